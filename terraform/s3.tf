# The bucket: Sluice's whole state. Encrypted with KMS, never public, not versioned, and no
# lifecycle rule that expires Sluice's keys (retention, garbage collection and journal
# truncation are Sluice's own, and deleting any of its objects early would lose acked records).

resource "aws_s3_bucket" "this" {
  #checkov:skip=CKV_AWS_18:Server access logs go to a second bucket the operator owns; this module does not create one (enable it with aws_s3_bucket_logging on the output bucket name).
  #checkov:skip=CKV_AWS_21:Versioning is off on purpose: Sluice deletes objects by design (retention, segment GC, journal truncation) and never overwrites one, so versions would only keep deleted data and its cost.
  #checkov:skip=CKV_AWS_144:Cross-region replication is the operator's choice (a second bucket in another region); Sluice does not need it.
  #checkov:skip=CKV2_AWS_62:Sluice reads the bucket itself; nothing consumes S3 event notifications.
  bucket        = var.bucket_name
  bucket_prefix = var.bucket_name == null ? "${var.name}-" : null
  force_destroy = var.force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_ownership_controls" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "this" {
  bucket = aws_s3_bucket.this.id

  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "this" {
  bucket = aws_s3_bucket.this.id

  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm     = "aws:kms"
      kms_master_key_id = local.kms_key_arn
    }
    # One data key per bucket instead of per object: far fewer KMS calls for Sluice's many
    # small journal entries.
    bucket_key_enabled = true
  }
}

resource "aws_s3_bucket_versioning" "this" {
  bucket = aws_s3_bucket.this.id

  versioning_configuration {
    status = "Disabled"
  }
}

# The lifecycle the data layout allows: abort incomplete multipart uploads (a compactor that
# crashed while writing a Parquet file), and optionally move immutable, rarely rewritten objects
# (data/, tables/) to Intelligent-Tiering. No expiration: every key is deleted by Sluice itself
# when its rules say so (docs/ARCHITECTURE.md).
resource "aws_s3_bucket_lifecycle_configuration" "this" {
  #checkov:skip=CKV_AWS_300:The first rule aborts incomplete multipart uploads under the whole prefix; the optional Intelligent-Tiering rules only transition objects and need no abort of their own.
  bucket = aws_s3_bucket.this.id

  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"

    # The whole bucket when there is no prefix (an empty filter).
    filter {
      prefix = local.key_prefix == "" ? null : local.key_prefix
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = var.abort_incomplete_multipart_days
    }
  }

  dynamic "rule" {
    for_each = var.intelligent_tiering_days == null ? [] : ["data/", "tables/"]

    content {
      id     = "intelligent-tiering-${trimsuffix(rule.value, "/")}"
      status = "Enabled"

      filter {
        prefix = "${local.key_prefix}${rule.value}"
      }

      transition {
        days          = var.intelligent_tiering_days
        storage_class = "INTELLIGENT_TIERING"
      }
    }
  }

  depends_on = [aws_s3_bucket_versioning.this]
}

data "aws_iam_policy_document" "bucket" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.this.arn, "${aws_s3_bucket.this.arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "this" {
  bucket = aws_s3_bucket.this.id
  policy = data.aws_iam_policy_document.bucket.json

  depends_on = [aws_s3_bucket_public_access_block.this]
}
