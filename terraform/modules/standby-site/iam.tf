# Least privilege, generated from one table: each statement below is what
# `standby target iam-policy --role shipper|standby --json` prints for this bucket, prefix,
# server and key (standby/transfer/s3_calls.py), and tests/test_terraform.py holds them equal.

data "aws_iam_policy_document" "shipper_trust" {
  statement {
    sid     = "AssumedByTheShipper"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = var.shipper_trusted_arns
    }
  }
}

data "aws_iam_policy_document" "standby_trust" {
  statement {
    sid     = "AssumedByTheStandby"
    actions = ["sts:AssumeRole"]

    principals {
      type        = "AWS"
      identifiers = var.standby_trusted_arns
    }
  }
}

resource "aws_iam_role" "shipper" {
  name               = "${var.name}-shipper"
  description        = "standby ship and stream of server ${var.server_id} into s3://${var.bucket_name}/${local.server_prefix}"
  assume_role_policy = data.aws_iam_policy_document.shipper_trust.json
  tags               = var.tags
}

resource "aws_iam_role" "standby" {
  name               = "${var.name}-standby"
  description        = "standby pull and verify of server ${var.server_id} from s3://${var.bucket_name}/${local.server_prefix}"
  assume_role_policy = data.aws_iam_policy_document.standby_trust.json
  tags               = var.tags
}

data "aws_iam_policy_document" "shipper" {
  statement {
    sid       = "ListServerPrefix"
    actions   = ["s3:ListBucket"]
    resources = [module.bucket.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.server_prefix}*"]
    }
  }

  statement {
    sid = "ServerObjects"
    actions = [
      "s3:AbortMultipartUpload",
      "s3:GetObject",
      "s3:ListMultipartUploadParts",
      "s3:PutObject",
    ]
    resources = [local.objects_arn]
  }

  # Prune's deletes, only where nothing is locked: under Object Lock the shipper cannot delete.
  dynamic "statement" {
    for_each = var.object_lock == null ? ["prune"] : []

    content {
      sid       = "PruneServerObjects"
      actions   = ["s3:DeleteObject"]
      resources = [local.objects_arn]
    }
  }

  statement {
    sid       = "SnapshotKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [module.bucket.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${module.bucket.region}.${data.aws_partition.current.dns_suffix}"]
    }
  }
}

data "aws_iam_policy_document" "standby" {
  statement {
    sid       = "ListServerPrefix"
    actions   = ["s3:ListBucket"]
    resources = [module.bucket.bucket_arn]

    condition {
      test     = "StringLike"
      variable = "s3:prefix"
      values   = ["${local.server_prefix}*"]
    }
  }

  statement {
    sid       = "ServerObjects"
    actions   = ["s3:GetObject"]
    resources = [local.objects_arn]
  }

  statement {
    sid       = "SnapshotKey"
    actions   = ["kms:Decrypt"]
    resources = [module.bucket.kms_key_arn]

    condition {
      test     = "StringEquals"
      variable = "kms:ViaService"
      values   = ["s3.${module.bucket.region}.${data.aws_partition.current.dns_suffix}"]
    }
  }
}

resource "aws_iam_role_policy" "shipper" {
  name   = "${var.name}-shipper"
  role   = aws_iam_role.shipper.id
  policy = data.aws_iam_policy_document.shipper.json
}

resource "aws_iam_role_policy" "standby" {
  name   = "${var.name}-standby"
  role   = aws_iam_role.standby.id
  policy = data.aws_iam_policy_document.standby.json
}
