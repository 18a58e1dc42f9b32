# The bucket's customer key. Its policy names every principal that may touch it: the admins
# (administration only, no data), the writers and the readers (data, only through S3). There is
# no statement for the account root, so an IAM policy elsewhere in the account cannot open it.

resource "aws_kms_key" "this" {
  description             = "standby: snapshots and redo in s3://${var.name}"
  enable_key_rotation     = true
  deletion_window_in_days = var.kms_deletion_window_days
  policy                  = data.aws_iam_policy_document.key.json
  tags                    = var.tags
}

resource "aws_kms_alias" "this" {
  name          = "alias/standby/${var.name}"
  target_key_id = aws_kms_key.this.key_id
}

locals {
  # Who may use the key for data, and for what; each only through S3 in this region.
  key_uses = {
    WriteThroughS3 = {
      actions    = ["kms:Decrypt", "kms:GenerateDataKey"]
      principals = var.kms_users.write
    }
    ReadThroughS3 = {
      actions    = ["kms:Decrypt"]
      principals = var.kms_users.read
    }
    # S3 replication encrypts each replica with kms:Encrypt; a destination with a bucket key
    # has S3 make that bucket key with kms:GenerateDataKey.
    ReplicateThroughS3 = {
      actions    = ["kms:Encrypt", "kms:GenerateDataKey"]
      principals = var.kms_users.replicate
    }
  }
}

data "aws_iam_policy_document" "key" {
  #checkov:skip=CKV_AWS_109:In a key policy "Resource" can only be "*", meaning this key; the principals are named ARNs.
  #checkov:skip=CKV_AWS_111:In a key policy "Resource" can only be "*", meaning this key; the principals are named ARNs.
  #checkov:skip=CKV_AWS_356:In a key policy "Resource" can only be "*", meaning this key; the principals are named ARNs.
  statement {
    sid    = "Administration"
    effect = "Allow"
    actions = [
      "kms:CancelKeyDeletion",
      "kms:CreateAlias",
      "kms:DeleteAlias",
      "kms:DescribeKey",
      "kms:DisableKey",
      "kms:DisableKeyRotation",
      "kms:EnableKey",
      "kms:EnableKeyRotation",
      "kms:GetKeyPolicy",
      "kms:GetKeyRotationStatus",
      "kms:ListAliases",
      "kms:ListResourceTags",
      "kms:PutKeyPolicy",
      "kms:ScheduleKeyDeletion",
      "kms:TagResource",
      "kms:UntagResource",
      "kms:UpdateAlias",
      "kms:UpdateKeyDescription",
    ]
    resources = ["*"]

    principals {
      type        = "AWS"
      identifiers = var.kms_admin_arns
    }
  }

  dynamic "statement" {
    for_each = { for sid, use in local.key_uses : sid => use if length(use.principals) > 0 }

    content {
      sid       = statement.key
      effect    = "Allow"
      actions   = statement.value.actions
      resources = ["*"]

      principals {
        type        = "AWS"
        identifiers = statement.value.principals
      }

      condition {
        test     = "StringEquals"
        variable = "kms:ViaService"
        values   = [local.s3_via_service]
      }

      condition {
        test     = "StringEquals"
        variable = "kms:CallerAccount"
        values   = [data.aws_caller_identity.current.account_id]
      }
    }
  }
}
