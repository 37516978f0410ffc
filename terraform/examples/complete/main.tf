# A complete root module: Sluice in an existing VPC, with an HTTPS load balancer and bearer
# tokens from Secrets Manager.
#
#   cp terraform.tfvars.example terraform.tfvars   # then fill it in
#   terraform init && terraform apply
#   export SLUICE_URL="$(terraform output -raw endpoint_url)"
#   sluice topics create orders --partitions 4

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project = "sluice"
    }
  }
}

module "sluice" {
  source = "../.."

  name  = var.name
  image = var.image

  vpc_id              = var.vpc_id
  task_subnet_ids     = var.private_subnet_ids
  alb_subnet_ids      = var.public_subnet_ids
  internal            = var.internal
  allowed_cidr_blocks = var.allowed_cidr_blocks
  certificate_arn     = var.certificate_arn
  tokens_secret_arn   = var.tokens_secret_arn
  # With tokens, one of them (admin on *) for the gateways' commit hand-overs.
  internal_token_secret_arn = var.internal_token_secret_arn

  gateway_min_count = 2
  gateway_max_count = 8
  linger_ms         = 10

  log_retention_days       = 30
  intelligent_tiering_days = 30

  tags = {
    environment = var.environment
  }
}
