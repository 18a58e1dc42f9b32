# A standby site for one mailbox server: the bucket, its key and the two roles in var.region,
# and, when var.replica_region is set, a replica of the server's objects in that region.

provider "aws" {
  region = var.region
}

provider "aws" {
  alias  = "replica"
  region = coalesce(var.replica_region, var.region)
}

locals {
  object_lock = var.object_lock_retention_days == null ? null : {
    mode           = "GOVERNANCE"
    retention_days = var.object_lock_retention_days
  }
  # Sets older than a quarter are rarely pulled: keep them where a read costs more, storing less.
  lifecycle_rules = {
    noncurrent_version_expiration_days = 30
    transition_days                    = 90
    transition_storage_class           = "GLACIER_IR"
  }
}

module "site" {
  source = "../../modules/standby-site"

  bucket_name          = var.bucket_name
  prefix               = var.prefix
  server_id            = var.server_id
  shipper_trusted_arns = var.shipper_trusted_arns
  standby_trusted_arns = var.standby_trusted_arns
  kms_admin_arns       = var.kms_admin_arns
  object_lock          = local.object_lock
  lifecycle_rules      = local.lifecycle_rules

  replication_enabled = var.replica_region != null
  replica = var.replica_region == null ? null : {
    bucket_arn  = module.replica[0].bucket_arn
    kms_key_arn = module.replica[0].kms_key_arn
  }

  tags = var.tags
}

module "replica" {
  source = "../../modules/standby-bucket"
  count  = var.replica_region == null ? 0 : 1

  providers = {
    aws = aws.replica
  }

  name           = "${var.bucket_name}-replica"
  kms_admin_arns = var.kms_admin_arns
  kms_users = {
    replicate = [module.site.replication_role_arn]
  }
  # Replicas of locked versions keep their retention only in a bucket that has Object Lock too.
  object_lock     = local.object_lock
  lifecycle_rules = local.lifecycle_rules
  tags            = var.tags
}
