# The standby site of one mailbox server: the bucket and its key (standby-bucket), a role for
# the primary's shipper and one for the standby, each allowed exactly the S3 calls
# standby/transfer/s3_calls.py lists for it, on PREFIX/SERVER_ID/ only (iam.tf), and optional
# replication to a bucket in another region (replication.tf).

data "aws_partition" "current" {}

locals {
  # standby.transfer.s3_calls.server_prefix: where the server's objects live.
  server_prefix = "${var.prefix}/${var.server_id}/"
  objects_arn   = "${module.bucket.bucket_arn}/${local.server_prefix}*"
}

module "bucket" {
  source = "../standby-bucket"

  name           = var.bucket_name
  kms_admin_arns = var.kms_admin_arns
  kms_users = {
    write = [aws_iam_role.shipper.arn]
    read  = concat([aws_iam_role.standby.arn], aws_iam_role.replication[*].arn)
  }
  object_lock     = var.object_lock
  lifecycle_rules = merge(var.lifecycle_rules, { transition_prefix = local.server_prefix })
  tags            = var.tags
}
