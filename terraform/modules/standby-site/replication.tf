# Optional cross-region replication of every version under the server's prefix to a second
# bucket (another region's standby-bucket), by a role that may do only that.

data "aws_iam_policy_document" "replication_trust" {
  count = var.replication_enabled ? 1 : 0

  statement {
    sid     = "AssumedByS3"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["s3.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "replication" {
  count              = var.replication_enabled ? 1 : 0
  name               = "${var.name}-replication"
  description        = "S3 replication of s3://${var.bucket_name}/${local.server_prefix} to its replica"
  assume_role_policy = data.aws_iam_policy_document.replication_trust[0].json
  tags               = var.tags
}

data "aws_iam_policy_document" "replication" {
  count = var.replication_enabled ? 1 : 0

  lifecycle {
    precondition {
      condition     = var.replica != null
      error_message = "replication_enabled needs replica: the destination bucket's ARN and its KMS key's ARN."
    }
  }

  statement {
    sid       = "ReadReplicationConfiguration"
    actions   = ["s3:GetReplicationConfiguration", "s3:ListBucket"]
    resources = [module.bucket.bucket_arn]
  }

  statement {
    sid = "ReadSourceVersions"
    actions = [
      "s3:GetObjectLegalHold",
      "s3:GetObjectRetention",
      "s3:GetObjectVersionAcl",
      "s3:GetObjectVersionForReplication",
      "s3:GetObjectVersionTagging",
    ]
    resources = [local.objects_arn]
  }

  statement {
    sid       = "WriteReplicas"
    actions   = ["s3:ReplicateDelete", "s3:ReplicateObject", "s3:ReplicateTags"]
    resources = ["${var.replica.bucket_arn}/${local.server_prefix}*"]
  }

  statement {
    sid       = "DecryptSource"
    actions   = ["kms:Decrypt"]
    resources = [module.bucket.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${module.bucket.region}.${data.aws_partition.current.dns_suffix}"]
    }
  }

  statement {
    sid       = "EncryptReplicas"
    actions   = ["kms:Encrypt", "kms:GenerateDataKey"]
    resources = [var.replica.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${split(":", var.replica.kms_key_arn)[3]}.${data.aws_partition.current.dns_suffix}"]
    }
  }
}

resource "aws_iam_role_policy" "replication" {
  count  = var.replication_enabled ? 1 : 0
  name   = "${var.name}-replication"
  role   = aws_iam_role.replication[0].id
  policy = data.aws_iam_policy_document.replication[0].json
}

resource "aws_s3_bucket_replication_configuration" "this" {
  count  = var.replication_enabled ? 1 : 0
  bucket = module.bucket.bucket
  role   = aws_iam_role.replication[0].arn

  rule {
    id     = "replicate-${var.server_id}"
    status = "Enabled"

    filter {
      prefix = local.server_prefix
    }

    delete_marker_replication {
      status = "Enabled"
    }

    source_selection_criteria {
      sse_kms_encrypted_objects {
        status = "Enabled"
      }
    }

    destination {
      bucket        = var.replica.bucket_arn
      storage_class = var.replica.storage_class

      encryption_configuration {
        replica_kms_key_id = var.replica.kms_key_arn
      }
    }
  }

  # The source must be versioned (module.bucket.bucket_arn waits for it) and the role usable.
  depends_on = [aws_iam_role_policy.replication, module.bucket]
}
