# Sluice on AWS: one bucket, gateways as an ECS Fargate service behind an application load
# balancer, one compactor service. See README.md in this folder.

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.id

  # Keys of this deployment: "" or "prefix/".
  key_prefix = var.prefix == "" ? "" : "${var.prefix}/"
  # What `sluice gateway --store` and `sluice compactor --store` are given.
  store_url = var.prefix == "" ? "s3://${aws_s3_bucket.this.bucket}" : "s3://${aws_s3_bucket.this.bucket}/${var.prefix}"

  kms_key_arn = coalesce(var.kms_key_arn, one(aws_kms_key.this[*].arn))

  # The port the gateway listens on inside its task (SLUICE_LISTEN=0.0.0.0:8080, as in the image).
  gateway_port = 8080

  https = var.certificate_arn != null

  tags = merge({ "sluice:deployment" = var.name }, var.tags)

  # ECR repositories the execution role may pull from: the image's own, when it is in ECR.
  ecr_match = try(regex("^([0-9]{12})\\.dkr\\.ecr\\.([a-z0-9-]+)\\.amazonaws\\.com(?:\\.cn)?/([^:@]+)", var.image), [])
  ecr_repository_arns = try(
    ["arn:${local.partition}:ecr:${local.ecr_match[1]}:${local.ecr_match[0]}:repository/${local.ecr_match[2]}"],
    [],
  )

  # Gateways elect a committer per journal shard and hand it their commits, at the address each
  # reads from the ECS task metadata endpoint. With bearer tokens on, a hand-over carries
  # SLUICE_INTERNAL_TOKEN; without that secret the gateways commit directly
  # (SLUICE_NO_COMMITTER), which is correct but does not scale one hot topic.
  committer_election = var.tokens_secret_arn == null || var.internal_token_secret_arn != null

  # Environment shared by both containers.
  common_environment = merge(var.extra_environment, {
    AWS_REGION   = local.region
    SLUICE_LOG   = var.log_level
    SLUICE_STORE = local.store_url
  })
  # The gateway's tuning flags, set only when given (null keeps the gateway's default).
  gateway_tuning = {
    SLUICE_LINGER_MS         = var.linger_ms
    SLUICE_SHARDS            = var.shards
    SLUICE_MAX_PENDING_BYTES = var.max_pending_bytes
  }
  gateway_environment = merge(
    local.common_environment,
    { for k, v in local.gateway_tuning : k => tostring(v) if v != null },
    { SLUICE_LISTEN = "0.0.0.0:${local.gateway_port}" },
    local.committer_election ? {} : { SLUICE_NO_COMMITTER = "true" },
  )
  gateway_secrets = concat(
    var.tokens_secret_arn == null ? [] : [
      { name = "SLUICE_TOKENS", valueFrom = var.tokens_secret_arn },
    ],
    var.tokens_secret_arn == null || var.internal_token_secret_arn == null ? [] : [
      { name = "SLUICE_INTERNAL_TOKEN", valueFrom = var.internal_token_secret_arn },
    ],
  )
}
