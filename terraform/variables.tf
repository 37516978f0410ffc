# Inputs of the Sluice module. Every variable has a type, a description and, where a value can
# be wrong, a validation block whose message says what is expected (validations that compare
# two variables need Terraform 1.9 or newer).

# --- naming and placement ---------------------------------------------------------------------

variable "name" {
  description = "Name of this deployment: prefix of every resource name (ALB, target group, ECS cluster, services, roles, log groups). Lowercase letters, digits and hyphens, 2-24 characters, starting with a letter."
  type        = string
  default     = "sluice"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,22}[a-z0-9]$", var.name))
    error_message = "name must be 2-24 characters of lowercase letters, digits and hyphens, start with a letter and not end with a hyphen (ALB and target group names are limited to 32 characters and get a suffix)."
  }
}

variable "tags" {
  description = "Tags added to every resource that takes tags."
  type        = map(string)
  default     = {}
}

variable "vpc_id" {
  description = "ID of the VPC the load balancer and the tasks run in."
  type        = string

  validation {
    condition     = can(regex("^vpc-[0-9a-f]{8,17}$", var.vpc_id))
    error_message = "vpc_id must be a VPC ID such as vpc-0123456789abcdef0."
  }
}

variable "task_subnet_ids" {
  description = "Subnets of the gateway and compactor tasks (normally private subnets with a NAT gateway or VPC endpoints for S3, ECR, CloudWatch Logs and Secrets Manager)."
  type        = list(string)

  validation {
    condition     = length(var.task_subnet_ids) >= 1 && alltrue([for s in var.task_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "task_subnet_ids must hold at least one subnet ID such as subnet-0123456789abcdef0."
  }
}

variable "alb_subnet_ids" {
  description = "Subnets of the application load balancer: at least two, in different Availability Zones (public subnets when internal = false)."
  type        = list(string)

  validation {
    condition     = length(var.alb_subnet_ids) >= 2 && alltrue([for s in var.alb_subnet_ids : can(regex("^subnet-[0-9a-f]{8,17}$", s))])
    error_message = "alb_subnet_ids must hold at least two subnet IDs (an ALB needs two Availability Zones), each like subnet-0123456789abcdef0."
  }
}

variable "assign_public_ip" {
  description = "Give the tasks public IPs (only for tasks in public subnets without a NAT gateway; the tasks must reach S3, ECR and CloudWatch Logs)."
  type        = bool
  default     = false
}

# --- the load balancer ------------------------------------------------------------------------

variable "internal" {
  description = "Make the load balancer internal (reachable only inside the VPC and connected networks). Set to false to publish the gateways on the internet, and then turn on bearer tokens (tokens_secret_arn)."
  type        = bool
  default     = true
}

variable "allowed_cidr_blocks" {
  description = "IPv4 CIDR blocks allowed to connect to the load balancer's listeners."
  type        = list(string)

  validation {
    condition     = length(var.allowed_cidr_blocks) >= 1 && alltrue([for c in var.allowed_cidr_blocks : can(cidrhost(c, 0)) && can(regex("^[0-9.]+/[0-9]+$", c))])
    error_message = "allowed_cidr_blocks must hold at least one IPv4 CIDR block such as 10.0.0.0/16."
  }
}

variable "certificate_arn" {
  description = "ACM certificate ARN for an HTTPS listener on port 443 (HTTP on port 80 then redirects to it). null serves plain HTTP on port 80, for internal load balancers only."
  type        = string
  default     = null

  validation {
    condition     = var.certificate_arn == null || can(regex("^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/.+$", var.certificate_arn))
    error_message = "certificate_arn must be null or an ACM certificate ARN (arn:aws:acm:REGION:ACCOUNT:certificate/ID)."
  }
}

variable "ssl_policy" {
  description = "TLS policy of the HTTPS listener."
  type        = string
  default     = "ELBSecurityPolicy-TLS13-1-2-2021-06"

  validation {
    condition     = can(regex("^ELBSecurityPolicy-(TLS13-1-[23]|FS-1-2|TLS-1-2)", var.ssl_policy))
    error_message = "ssl_policy must be an ELB security policy that requires TLS 1.2 or newer (ELBSecurityPolicy-TLS13-1-2-*, -TLS13-1-3-*, -FS-1-2-*, -TLS-1-2-*)."
  }
}

variable "idle_timeout_seconds" {
  description = "Load balancer idle timeout in seconds. Must exceed the longest long-poll a client asks for (wait_ms up to 30 s); Server-Sent Events streams send a keep-alive every 15 s."
  type        = number
  default     = 120

  validation {
    condition     = var.idle_timeout_seconds >= 35 && var.idle_timeout_seconds <= 4000 && floor(var.idle_timeout_seconds) == var.idle_timeout_seconds
    error_message = "idle_timeout_seconds must be a whole number from 35 (above the 30 s longest long-poll) to 4000."
  }
}

variable "deletion_protection" {
  description = "Protect the load balancer from deletion (turn off before terraform destroy)."
  type        = bool
  default     = true
}

variable "alb_access_logs_bucket" {
  description = "S3 bucket for the load balancer's access logs (its policy must allow the ELB log delivery); null turns access logs off."
  type        = string
  default     = null

  validation {
    condition     = var.alb_access_logs_bucket == null || can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.alb_access_logs_bucket))
    error_message = "alb_access_logs_bucket must be null or a bucket name (3-63 lowercase letters, digits, dots and hyphens)."
  }
}

variable "web_acl_arn" {
  description = "AWS WAFv2 web ACL to associate with the load balancer; null associates none."
  type        = string
  default     = null

  validation {
    condition     = var.web_acl_arn == null || can(regex("^arn:aws[a-z-]*:wafv2:[a-z0-9-]+:[0-9]{12}:regional/webacl/.+$", var.web_acl_arn))
    error_message = "web_acl_arn must be null or a regional WAFv2 web ACL ARN (arn:aws:wafv2:REGION:ACCOUNT:regional/webacl/NAME/ID)."
  }
}

# --- the bucket -------------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the bucket to create. null lets AWS pick a unique name starting with \"<name>-\"."
  type        = string
  default     = null

  validation {
    condition = var.bucket_name == null || (
      can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name)) &&
      !can(regex("\\.\\.", var.bucket_name)) &&
      !can(regex("^[0-9]+\\.[0-9]+\\.[0-9]+\\.[0-9]+$", var.bucket_name))
    )
    error_message = "bucket_name must be null or a valid S3 bucket name: 3-63 lowercase letters, digits, dots and hyphens, starting and ending with a letter or digit, no \"..\", not an IP address."
  }
}

variable "prefix" {
  description = "Key prefix inside the bucket for this deployment (\"\" = the whole bucket). The tasks' IAM policies allow object access under it only."
  type        = string
  default     = ""

  validation {
    condition     = var.prefix == "" || can(regex("^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$", var.prefix))
    error_message = "prefix must be \"\" or path segments of letters, digits, \"_\", \".\" and \"-\" separated by single slashes, with no leading or trailing slash (e.g. \"prod/sluice\")."
  }
}

variable "force_destroy" {
  description = "Let terraform destroy delete the bucket with everything in it. Leave false for real data."
  type        = bool
  default     = false
}

variable "kms_key_arn" {
  description = "KMS key for bucket encryption (SSE-KMS with an S3 bucket key) and the log groups. null creates a key with rotation for this deployment. A key of your own must allow the CloudWatch Logs service in its key policy."
  type        = string
  default     = null

  validation {
    condition     = var.kms_key_arn == null || can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/.+$", var.kms_key_arn))
    error_message = "kms_key_arn must be null or a KMS key ARN (arn:aws:kms:REGION:ACCOUNT:key/ID)."
  }
}

variable "abort_incomplete_multipart_days" {
  description = "Days after which S3 aborts multipart uploads that were never completed (the compactor writes Parquet table files as multipart uploads; a crashed one leaves parts behind)."
  type        = number
  default     = 1

  validation {
    condition     = var.abort_incomplete_multipart_days >= 1 && var.abort_incomplete_multipart_days <= 365 && floor(var.abort_incomplete_multipart_days) == var.abort_incomplete_multipart_days
    error_message = "abort_incomplete_multipart_days must be a whole number of days from 1 to 365."
  }
}

variable "intelligent_tiering_days" {
  description = "Move the compactor's immutable data objects (data/) and Parquet table files (tables/) to S3 Intelligent-Tiering this many days after they were written; null keeps everything in S3 Standard. Nothing is ever expired by a lifecycle rule: retention is Sluice's job."
  type        = number
  default     = null

  validation {
    condition     = var.intelligent_tiering_days == null || try(var.intelligent_tiering_days >= 0 && floor(var.intelligent_tiering_days) == var.intelligent_tiering_days, false)
    error_message = "intelligent_tiering_days must be null or a whole number of days, 0 or more."
  }
}

# --- the container image and the tasks --------------------------------------------------------

variable "image" {
  description = "URI of the Sluice image built from the repository's Dockerfile, with a tag or a digest, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/sluice:0.1.0. Pulls from ECR repositories of the account are allowed to the execution role."
  type        = string

  validation {
    condition     = can(regex("^[^\\s]+(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$", var.image)) && !can(regex(":latest$", var.image))
    error_message = "image must be an image URI with a pinned tag or a sha256 digest, not :latest (e.g. REGISTRY/sluice:0.1.0), so every task of a deployment runs the same build."
  }
}

variable "cpu_architecture" {
  description = "CPU architecture of the image: X86_64 or ARM64 (Graviton)."
  type        = string
  default     = "X86_64"

  validation {
    condition     = contains(["X86_64", "ARM64"], var.cpu_architecture)
    error_message = "cpu_architecture must be X86_64 or ARM64."
  }
}

variable "gateway_cpu" {
  description = "CPU units of one gateway task (1024 = one vCPU)."
  type        = number
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.gateway_cpu)
    error_message = "gateway_cpu must be a Fargate CPU size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "gateway_memory" {
  description = "Memory of one gateway task in MiB; must fit gateway_cpu (Fargate's CPU/memory combinations)."
  type        = number
  default     = 2048

  validation {
    condition     = var.gateway_memory >= 512 && var.gateway_memory <= 122880 && floor(var.gateway_memory) == var.gateway_memory
    error_message = "gateway_memory must be a whole number of MiB from 512 to 122880."
  }

  validation {
    condition = (
      var.gateway_cpu == 256 ? contains([512, 1024, 2048], var.gateway_memory) :
      var.gateway_cpu == 512 ? var.gateway_memory >= 1024 && var.gateway_memory <= 4096 && var.gateway_memory % 1024 == 0 :
      var.gateway_cpu == 1024 ? var.gateway_memory >= 2048 && var.gateway_memory <= 8192 && var.gateway_memory % 1024 == 0 :
      var.gateway_cpu == 2048 ? var.gateway_memory >= 4096 && var.gateway_memory <= 16384 && var.gateway_memory % 1024 == 0 :
      var.gateway_cpu == 4096 ? var.gateway_memory >= 8192 && var.gateway_memory <= 30720 && var.gateway_memory % 1024 == 0 :
      var.gateway_cpu == 8192 ? var.gateway_memory >= 16384 && var.gateway_memory <= 61440 && var.gateway_memory % 4096 == 0 :
      var.gateway_memory >= 32768 && var.gateway_memory <= 122880 && var.gateway_memory % 8192 == 0
    )
    error_message = "gateway_memory is not a Fargate size for gateway_cpu: 256 CPU takes 512, 1024 or 2048 MiB; 512 takes 1024-4096; 1024 takes 2048-8192; 2048 takes 4096-16384; 4096 takes 8192-30720 (steps of 1024); 8192 takes 16384-61440 (steps of 4096); 16384 takes 32768-122880 (steps of 8192)."
  }
}

variable "compactor_cpu" {
  description = "CPU units of the compactor task (1024 = one vCPU)."
  type        = number
  default     = 1024

  validation {
    condition     = contains([256, 512, 1024, 2048, 4096, 8192, 16384], var.compactor_cpu)
    error_message = "compactor_cpu must be a Fargate CPU size: 256, 512, 1024, 2048, 4096, 8192 or 16384."
  }
}

variable "compactor_memory" {
  description = "Memory of the compactor task in MiB (it folds at most 64 MiB per pass and streams Parquet row groups of about 64 MiB); must fit compactor_cpu."
  type        = number
  default     = 2048

  validation {
    condition     = var.compactor_memory >= 512 && var.compactor_memory <= 122880 && floor(var.compactor_memory) == var.compactor_memory
    error_message = "compactor_memory must be a whole number of MiB from 512 to 122880."
  }

  validation {
    condition = (
      var.compactor_cpu == 256 ? contains([512, 1024, 2048], var.compactor_memory) :
      var.compactor_cpu == 512 ? var.compactor_memory >= 1024 && var.compactor_memory <= 4096 && var.compactor_memory % 1024 == 0 :
      var.compactor_cpu == 1024 ? var.compactor_memory >= 2048 && var.compactor_memory <= 8192 && var.compactor_memory % 1024 == 0 :
      var.compactor_cpu == 2048 ? var.compactor_memory >= 4096 && var.compactor_memory <= 16384 && var.compactor_memory % 1024 == 0 :
      var.compactor_cpu == 4096 ? var.compactor_memory >= 8192 && var.compactor_memory <= 30720 && var.compactor_memory % 1024 == 0 :
      var.compactor_cpu == 8192 ? var.compactor_memory >= 16384 && var.compactor_memory <= 61440 && var.compactor_memory % 4096 == 0 :
      var.compactor_memory >= 32768 && var.compactor_memory <= 122880 && var.compactor_memory % 8192 == 0
    )
    error_message = "compactor_memory is not a Fargate size for compactor_cpu: 256 CPU takes 512, 1024 or 2048 MiB; 512 takes 1024-4096; 1024 takes 2048-8192; 2048 takes 4096-16384; 4096 takes 8192-30720 (steps of 1024); 8192 takes 16384-61440 (steps of 4096); 16384 takes 32768-122880 (steps of 8192)."
  }
}

variable "tokens_secret_arn" {
  description = "Secrets Manager secret whose value is the gateways' bearer tokens in SLUICE_TOKENS form (\"TOKEN=SCOPES:PATTERNS;...\", e.g. \"app-7f3a=produce,consume:orders*;ops-91c2=admin:*\"). null runs the gateways without tokens: anyone who reaches the load balancer may do anything."
  type        = string
  default     = null

  validation {
    condition     = var.tokens_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.tokens_secret_arn))
    error_message = "tokens_secret_arn must be null or a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)."
  }
}

variable "internal_token_secret_arn" {
  description = "Secrets Manager secret whose value is one bearer token (a token of tokens_secret_arn with admin on *) that gateways present to each other when they hand commits to a shard committer (SLUICE_INTERNAL_TOKEN). Needed only with tokens_secret_arn: without it the gateways then commit directly and a hot topic's commit rate does not grow with their number."
  type        = string
  default     = null

  validation {
    condition     = var.internal_token_secret_arn == null || can(regex("^arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:.+$", var.internal_token_secret_arn))
    error_message = "internal_token_secret_arn must be null or a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME)."
  }
}

variable "log_level" {
  description = "Log filter of the gateway and compactor (SLUICE_LOG, tracing's EnvFilter syntax), e.g. \"info\" or \"warn,sluice_gateway=debug\"."
  type        = string
  default     = "info"

  validation {
    condition     = can(regex("^[A-Za-z0-9_:=,.-]+$", var.log_level))
    error_message = "log_level must be an EnvFilter directive such as info, warn or warn,sluice_gateway=debug (letters, digits, _ : = , . -)."
  }
}

variable "extra_environment" {
  description = "More environment variables for both containers (e.g. SLUICE_LOG_FORMAT). The variables this module sets itself cannot be overridden here."
  type        = map(string)
  default     = {}

  validation {
    condition = alltrue([for k in keys(var.extra_environment) : can(regex("^[A-Z_][A-Z0-9_]*$", k))]) && length(setintersection(keys(var.extra_environment), [
      "SLUICE_STORE", "SLUICE_LISTEN", "SLUICE_NO_COMMITTER", "SLUICE_TOKENS", "SLUICE_INTERNAL_TOKEN", "SLUICE_LOG", "AWS_REGION",
      "SLUICE_LINGER_MS", "SLUICE_SHARDS", "SLUICE_MAX_PENDING_BYTES", "SLUICE_MAX_WAITING_READERS",
    ])) == 0
    error_message = "extra_environment keys must be upper-case environment variable names and must not be one the module sets (SLUICE_STORE, SLUICE_LISTEN, SLUICE_NO_COMMITTER, SLUICE_TOKENS, SLUICE_INTERNAL_TOKEN, SLUICE_LOG, AWS_REGION, SLUICE_LINGER_MS, SLUICE_SHARDS, SLUICE_MAX_PENDING_BYTES, SLUICE_MAX_WAITING_READERS)."
  }
}

# --- gateway tuning (the gateway's own flags; null keeps the gateway's default) --------------

variable "linger_ms" {
  description = "How long a gateway flush waits to gather more produce requests (SLUICE_LINGER_MS); null keeps the gateway's default for S3 (10 ms)."
  type        = number
  default     = null

  validation {
    condition     = var.linger_ms == null || try(var.linger_ms >= 0 && var.linger_ms <= 1000 && floor(var.linger_ms) == var.linger_ms, false)
    error_message = "linger_ms must be null or a whole number of milliseconds from 0 to 1000."
  }
}

variable "shards" {
  description = "Journal shards new topics are spread over (SLUICE_SHARDS); null keeps the default (4). Give every gateway the same value."
  type        = number
  default     = null

  validation {
    condition     = var.shards == null || try(var.shards >= 1 && var.shards <= 1024 && floor(var.shards) == var.shards, false)
    error_message = "shards must be null or a whole number from 1 to 1024."
  }
}

variable "max_pending_bytes" {
  description = "Bytes of produce requests a gateway holds while they wait for their commit (SLUICE_MAX_PENDING_BYTES); beyond it producers get 429. null keeps the default (64 MiB). Keep it well below gateway_memory."
  type        = number
  default     = null

  validation {
    condition     = var.max_pending_bytes == null || try(var.max_pending_bytes >= 1048576 && floor(var.max_pending_bytes) == var.max_pending_bytes, false)
    error_message = "max_pending_bytes must be null or a whole number of bytes, at least 1048576 (1 MiB)."
  }
}

# --- scaling ----------------------------------------------------------------------------------

variable "gateway_min_count" {
  description = "Fewest gateway tasks (also the desired count at creation). Two or more keep the API up while one is replaced."
  type        = number
  default     = 2

  validation {
    condition     = var.gateway_min_count >= 1 && var.gateway_min_count <= 1000 && floor(var.gateway_min_count) == var.gateway_min_count
    error_message = "gateway_min_count must be a whole number from 1 to 1000."
  }
}

variable "gateway_max_count" {
  description = "Most gateway tasks autoscaling may run; must be at least gateway_min_count."
  type        = number
  default     = 10

  validation {
    condition     = var.gateway_max_count >= 1 && var.gateway_max_count <= 1000 && floor(var.gateway_max_count) == var.gateway_max_count
    error_message = "gateway_max_count must be a whole number from 1 to 1000."
  }

  validation {
    condition     = var.gateway_max_count >= var.gateway_min_count
    error_message = "gateway_max_count must be at least gateway_min_count."
  }
}

variable "cpu_target_percent" {
  description = "Target average CPU utilisation of the gateway service for target-tracking autoscaling."
  type        = number
  default     = 60

  validation {
    condition     = var.cpu_target_percent >= 10 && var.cpu_target_percent <= 90
    error_message = "cpu_target_percent must be from 10 to 90."
  }
}

variable "requests_per_target" {
  description = "Target ALB requests per gateway task per minute (ALBRequestCountPerTarget) for target-tracking autoscaling. A produce request carries a whole batch, so size this from your batches."
  type        = number
  default     = 6000

  validation {
    condition     = var.requests_per_target >= 1 && floor(var.requests_per_target) == var.requests_per_target
    error_message = "requests_per_target must be a whole number of requests, 1 or more."
  }
}

variable "scale_in_cooldown_seconds" {
  description = "Seconds after a scale-in before another scale-in."
  type        = number
  default     = 300

  validation {
    condition     = var.scale_in_cooldown_seconds >= 0 && floor(var.scale_in_cooldown_seconds) == var.scale_in_cooldown_seconds
    error_message = "scale_in_cooldown_seconds must be a whole number of seconds, 0 or more."
  }
}

variable "scale_out_cooldown_seconds" {
  description = "Seconds after a scale-out before another scale-out."
  type        = number
  default     = 60

  validation {
    condition     = var.scale_out_cooldown_seconds >= 0 && floor(var.scale_out_cooldown_seconds) == var.scale_out_cooldown_seconds
    error_message = "scale_out_cooldown_seconds must be a whole number of seconds, 0 or more."
  }
}

# --- the compactor ----------------------------------------------------------------------------

variable "compactor_interval_ms" {
  description = "Pause between compactor passes in milliseconds (sluice compactor --interval-ms)."
  type        = number
  default     = 1000

  validation {
    condition     = var.compactor_interval_ms >= 100 && var.compactor_interval_ms <= 600000 && floor(var.compactor_interval_ms) == var.compactor_interval_ms
    error_message = "compactor_interval_ms must be a whole number of milliseconds from 100 to 600000."
  }
}

variable "compactor_lease_ms" {
  description = "Compactor lease duration in milliseconds (sluice compactor --lease-ms): how long a successor waits after the active compactor stops renewing. Must exceed compactor_interval_ms."
  type        = number
  default     = 30000

  validation {
    condition     = var.compactor_lease_ms >= 5000 && var.compactor_lease_ms <= 600000 && floor(var.compactor_lease_ms) == var.compactor_lease_ms
    error_message = "compactor_lease_ms must be a whole number of milliseconds from 5000 to 600000."
  }

  validation {
    condition     = var.compactor_lease_ms > var.compactor_interval_ms
    error_message = "compactor_lease_ms must exceed compactor_interval_ms: the compactor renews its lease between passes."
  }
}

# --- operations -------------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Days CloudWatch Logs keeps the gateway and compactor logs."
  type        = number
  default     = 30

  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts: 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288 or 3653."
  }
}

variable "container_insights" {
  description = "Turn on CloudWatch Container Insights for the ECS cluster."
  type        = bool
  default     = true
}

variable "health_check_grace_period_seconds" {
  description = "Seconds ECS ignores failing load balancer health checks of a new gateway task."
  type        = number
  default     = 30

  validation {
    condition     = var.health_check_grace_period_seconds >= 0 && var.health_check_grace_period_seconds <= 2147483647 && floor(var.health_check_grace_period_seconds) == var.health_check_grace_period_seconds
    error_message = "health_check_grace_period_seconds must be a whole number of seconds, 0 or more."
  }
}
