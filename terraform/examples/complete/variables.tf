variable "region" {
  description = "AWS region to deploy to."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "name" {
  description = "Name of the deployment (prefix of every resource name)."
  type        = string
  default     = "sluice"
}

variable "environment" {
  description = "Environment tag, e.g. prod or staging."
  type        = string
  default     = "prod"
}

variable "image" {
  description = "Sluice image URI with a tag or digest (built from the repository's Dockerfile and pushed to ECR)."
  type        = string
}

variable "vpc_id" {
  description = "ID of the existing VPC."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (with a NAT gateway or VPC endpoints) for the tasks."
  type        = list(string)
}

variable "public_subnet_ids" {
  description = "Subnets for the load balancer, in at least two Availability Zones (public when internal = false)."
  type        = list(string)
}

variable "internal" {
  description = "Keep the load balancer internal to the VPC."
  type        = bool
  default     = true
}

variable "allowed_cidr_blocks" {
  description = "CIDR blocks allowed to reach the load balancer."
  type        = list(string)
}

variable "certificate_arn" {
  description = "ACM certificate for HTTPS; null serves HTTP on an internal load balancer."
  type        = string
  default     = null
}

variable "tokens_secret_arn" {
  description = "Secrets Manager secret holding SLUICE_TOKENS; null runs without tokens."
  type        = string
  default     = null
}

variable "internal_token_secret_arn" {
  description = "Secrets Manager secret holding one token of tokens_secret_arn with admin on *, for the gateways' commit hand-overs (SLUICE_INTERNAL_TOKEN); null with tokens on keeps committer election off."
  type        = string
  default     = null
}
