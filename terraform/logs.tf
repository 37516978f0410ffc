resource "aws_cloudwatch_log_group" "gateway" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days variable (default 30 days); a year of request logs is the operator's choice, not a default.
  name              = "/ecs/${var.name}/gateway"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}

resource "aws_cloudwatch_log_group" "compactor" {
  #checkov:skip=CKV_AWS_338:Retention is the log_retention_days variable (default 30 days); a year of logs is the operator's choice, not a default.
  name              = "/ecs/${var.name}/compactor"
  retention_in_days = var.log_retention_days
  kms_key_id        = local.kms_key_arn
  tags              = local.tags
}
