output "endpoint_url" {
  description = "Gateway URL (SLUICE_URL)."
  value       = module.sluice.endpoint_url
}

output "bucket_name" {
  description = "The bucket holding Sluice's state."
  value       = module.sluice.bucket_name
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = module.sluice.bucket_arn
}

output "store_url" {
  description = "The --store URL for direct readers."
  value       = module.sluice.store_url
}
