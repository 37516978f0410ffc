# Least-privilege roles. The S3 calls Sluice makes (core/src/store, compactor/, tables/):
#   GET / HEAD / ranged GET          s3:GetObject
#   create-only PUT (If-None-Match)  s3:PutObject
#   DELETE (retention, GC, journal truncation, old leases and state-log entries)
#                                    s3:DeleteObject
#   LIST (ListObjectsV2)             s3:ListBucket
#   compactor only: Parquet files are multipart uploads (PutObject covers create, upload part
#   and complete) aborted on error (s3:AbortMultipartUpload), then renamed (CopyObject =
#   GetObject on the source + PutObject on the target, then DeleteObject).
# Object actions are granted on this deployment's prefix only. s3:ListBucket is granted on the
# bucket without an s3:prefix condition: S3 answers a GET of a missing key with 404 only to a
# caller that may list the bucket, and Sluice's commit protocol reads journal keys until the
# first 404 (a 403 there would stop every commit). It lets the tasks list key names outside the
# prefix, never read or write them.

# Task roles: assumed by ECS tasks of this account and region only (confused-deputy
# conditions, as the ECS task role documentation shows them).
data "aws_iam_policy_document" "ecs_tasks_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "aws:SourceArn"
      values   = ["arn:${local.partition}:ecs:${local.region}:${local.account_id}:*"]
    }
  }
}

# --- task execution role: pull the image, write logs, read the tokens secret -----------------

# The execution role is assumed by the ECS agent; its documented trust policy names the service
# only, so no conditions here (a condition the agent does not send would stop every task).
data "aws_iam_policy_document" "ecs_execution_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["ecs-tasks.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "execution" {
  name_prefix        = "${var.name}-exec-"
  assume_role_policy = data.aws_iam_policy_document.ecs_execution_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "execution" {
  # GetAuthorizationToken has no resource-level permissions.
  statement {
    sid       = "EcrLogin"
    actions   = ["ecr:GetAuthorizationToken"]
    resources = ["*"]
  }

  dynamic "statement" {
    for_each = length(local.ecr_repository_arns) == 0 ? [] : [1]

    content {
      sid       = "PullTheImage"
      actions   = ["ecr:BatchCheckLayerAvailability", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
      resources = local.ecr_repository_arns
    }
  }

  statement {
    sid       = "WriteLogs"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = [for g in [aws_cloudwatch_log_group.gateway, aws_cloudwatch_log_group.compactor] : "${g.arn}:*"]
  }

  dynamic "statement" {
    for_each = var.tokens_secret_arn == null ? [] : [var.tokens_secret_arn]

    content {
      sid       = "ReadTheTokens"
      actions   = ["secretsmanager:GetSecretValue"]
      resources = compact([statement.value, var.internal_token_secret_arn])
    }
  }
}

resource "aws_iam_role_policy" "execution" {
  name   = "pull-log-secrets"
  role   = aws_iam_role.execution.id
  policy = data.aws_iam_policy_document.execution.json
}

# --- task roles: the bucket ---------------------------------------------------------------------

data "aws_iam_policy_document" "store" {
  for_each = {
    gateway   = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"]
    compactor = ["s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"]
  }

  statement {
    sid       = "ListTheBucket"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.this.arn]
  }

  statement {
    sid       = "ObjectsUnderThePrefix"
    actions   = each.value
    resources = ["${aws_s3_bucket.this.arn}/${local.key_prefix}*"]
  }

  # SSE-KMS: writing an object needs a data key, reading it needs Decrypt; only through S3.
  statement {
    sid       = "BucketEncryption"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [local.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${local.region}.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "gateway" {
  name_prefix        = "${var.name}-gateway-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "gateway" {
  name   = "sluice-store"
  role   = aws_iam_role.gateway.id
  policy = data.aws_iam_policy_document.store["gateway"].json
}

resource "aws_iam_role" "compactor" {
  name_prefix        = "${var.name}-compactor-"
  assume_role_policy = data.aws_iam_policy_document.ecs_tasks_assume.json
  tags               = local.tags
}

resource "aws_iam_role_policy" "compactor" {
  name   = "sluice-store"
  role   = aws_iam_role.compactor.id
  policy = data.aws_iam_policy_document.store["compactor"].json
}
