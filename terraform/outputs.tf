output "endpoint_url" {
  description = "URL of the gateways behind the load balancer (SLUICE_URL for the CLI and SDK). Point a DNS name at alb_dns_name to use a name on the certificate."
  value       = "${local.https ? "https" : "http"}://${aws_lb.this.dns_name}"
}

output "alb_dns_name" {
  description = "DNS name of the load balancer."
  value       = aws_lb.this.dns_name
}

output "alb_zone_id" {
  description = "Route 53 zone ID of the load balancer, for an alias record."
  value       = aws_lb.this.zone_id
}

output "bucket_name" {
  description = "Name of the bucket holding Sluice's state."
  value       = aws_s3_bucket.this.bucket
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = aws_s3_bucket.this.arn
}

output "store_url" {
  description = "The --store URL of this deployment (s3://bucket[/prefix]), e.g. for `sluice consume --store` or the SDK's direct consumer."
  value       = local.store_url
}

output "kms_key_arn" {
  description = "KMS key encrypting the bucket and the log groups (readers of the bucket need kms:Decrypt on it)."
  value       = local.kms_key_arn
}

output "cluster_name" {
  description = "Name of the ECS cluster."
  value       = aws_ecs_cluster.this.name
}

output "gateway_service_name" {
  description = "Name of the gateways' ECS service."
  value       = aws_ecs_service.gateway.name
}

output "compactor_service_name" {
  description = "Name of the compactor's ECS service."
  value       = aws_ecs_service.compactor.name
}

output "gateway_task_role_arn" {
  description = "IAM role of the gateway tasks."
  value       = aws_iam_role.gateway.arn
}

output "compactor_task_role_arn" {
  description = "IAM role of the compactor task."
  value       = aws_iam_role.compactor.arn
}

output "execution_role_arn" {
  description = "ECS task execution role (image pull, logs, tokens secret)."
  value       = aws_iam_role.execution.arn
}

output "alb_security_group_id" {
  description = "Security group of the load balancer."
  value       = aws_security_group.alb.id
}

output "gateway_security_group_id" {
  description = "Security group of the gateway tasks."
  value       = aws_security_group.gateway.id
}

output "log_group_names" {
  description = "CloudWatch log groups of the gateways and the compactor."
  value = {
    gateway   = aws_cloudwatch_log_group.gateway.name
    compactor = aws_cloudwatch_log_group.compactor.name
  }
}
