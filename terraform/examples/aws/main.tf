# A standby site for one mailbox server: the bucket, its key and the two roles in var.region,
# and, when var.replica_region is set, a replica of the server's objects in that region.

provider "aws" {
  region = var.region
}

provider "aws" {
  alias  = "replica"
  region = coalesce(var.replica_region, var.region)
}

module "site" {
  source = "../../modules/standby-site"

  bucket_name          = var.bucket_name
  prefix               = var.prefix
  server_id            = var.server_id
  shipper_trusted_arns = var.shipper_trusted_arns
  standby_trusted_arns = var.standby_trusted_arns
  kms_admin_arns       = var.kms_admin_arns
  object_lock          = var.object_lock
  lifecycle_rules      = var.lifecycle_rules

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

  name               = "${var.bucket_name}-replica"
  kms_admin_arns     = var.kms_admin_arns
  kms_replicate_arns = [module.site.replication_role_arn]
  # Replicas of locked versions keep their retention only in a bucket that has Object Lock too.
  object_lock     = var.object_lock
  lifecycle_rules = var.lifecycle_rules
  tags            = var.tags
}
