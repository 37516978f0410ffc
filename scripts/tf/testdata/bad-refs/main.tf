# Negative case for check_refs.py: every mistake below must be reported (expected.txt), and
# nothing else: the correct references next to them must pass.

variable "name" {
  description = "name"
  type        = string
  default     = "x"
}

variable "subnets" {
  description = "subnets"
  type        = list(string)
}

locals {
  prefix = "${var.name}-"
  # a typo in a variable name, inside a nested template of a for expression
  ids = [for s in var.subnets : "${s}-${var.nmae}"]
  # for variables are in scope; an undefined local is not
  tags = { for k, v in local.prefx : k => v if v != "a.b" }
}

resource "aws_s3_bucket" "this" {
  bucket = local.prefix
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.that.id
  policy = data.aws_iam_policy_document.missing.json

  depends_on = [aws_s3_bucket.this, aws_s3_bucket_versioning.this]
}

resource "aws_s3_bucket_lifecycle_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  dynamic "rule" {
    for_each = var.subnets

    content {
      id = rule.value
      # the iterator is only in scope inside its own dynamic block's content
      status = each.value == "" ? rule.key : upper(rulez.value)
    }
  }
}

module "child" {
  source = "./child"

  size   = 3
  colour = "blue"
}

output "ok" {
  description = "ok"
  value       = module.child.id
}

output "bad" {
  description = "bad"
  value       = module.child.nope
}

output "nomodule" {
  description = "nomodule"
  value       = module.sibling.id
}

output "outside" {
  description = "outside"
  # a dynamic block's iterator used outside it
  value = rule.value
}
