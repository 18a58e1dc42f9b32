locals {
  # One attribute per key of the [target] section of standby.toml, named as there.
  target = {
    url           = "s3://${module.bucket.bucket}/${var.prefix}"
    region        = module.bucket.region
    kms_key_id    = module.bucket.kms_key_arn
    object_lock   = module.bucket.object_lock_enabled
    storage_class = var.storage_class
  }
}

output "target" {
  description = "The [target] section of standby.toml, one attribute per key: url, region, kms_key_id (the key's ARN, which uploads must name), object_lock (prune deletes nothing when true), storage_class."
  value       = local.target
}

output "standby_toml" {
  description = "The [target] section rendered as TOML, for the standby.toml of the primary and of the standby (whose server_id must be this module's server_id)."
  value = join("\n", concat(
    ["# server_id = \"${var.server_id}\" in the same file: the roles reach only ${local.server_prefix}", "[target]"],
    [for key, value in local.target : "${key} = ${jsonencode(value)}"],
    [""],
  ))
}

output "shipper_role_arn" {
  description = "Role standby ship, stream and prune --target assume on the primary."
  value       = aws_iam_role.shipper.arn
}

output "standby_role_arn" {
  description = "Role standby pull and verify assume at the standby."
  value       = aws_iam_role.standby.arn
}

output "replication_role_arn" {
  description = "Role S3 replicates with (null without replication); a replica's key must let it encrypt (standby-bucket kms_users.replicate)."
  value       = one(aws_iam_role.replication[*].arn)
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = module.bucket.bucket_arn
}
