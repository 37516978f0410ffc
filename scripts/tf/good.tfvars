# Valid values for the module's required variables (the positive case of the validation test).
vpc_id                = "vpc-0123456789abcdef0"
task_subnet_ids       = ["subnet-0123456789abcdef0"]
alb_subnet_ids        = ["subnet-0123456789abcdef1", "subnet-0123456789abcdef2"]
allowed_cidr_blocks   = ["10.0.0.0/8"]
image                 = "123456789012.dkr.ecr.eu-west-1.amazonaws.com/sluice:0.1.0"
certificate_arn       = "arn:aws:acm:eu-west-1:123456789012:certificate/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
bucket_name           = "acme-sluice-prod"
prefix                = "prod/sluice"
kms_key_arn           = "arn:aws:kms:eu-west-1:123456789012:key/0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"
tokens_secret_arn     = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sluice-tokens-AbCdEf"
internal_token_secret_arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:sluice-internal-AbCdEf"
web_acl_arn           = "arn:aws:wafv2:eu-west-1:123456789012:regional/webacl/sluice/0f1e2d3c"
extra_environment     = { SLUICE_LOG_FORMAT = "json" }
linger_ms             = 10
shards                = 8
compactor_interval_ms = 10000
