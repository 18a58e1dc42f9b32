variable "region" {
  description = "AWS region of the standby site's bucket."
  type        = string
  default     = "eu-west-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.region))
    error_message = "region must be an AWS region name such as eu-west-1."
  }
}

variable "replica_region" {
  description = "Region of a replica bucket; null for no cross-region replication."
  type        = string
  default     = null

  validation {
    condition     = var.replica_region == null ? true : can(regex("^[a-z]{2}(-[a-z]+)+-[0-9]$", var.replica_region))
    error_message = "replica_region must be null or an AWS region name such as eu-central-1."
  }
}

variable "bucket_name" {
  description = "Name of the bucket (the replica is named BUCKET-replica)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,53}[a-z0-9]$", var.bucket_name))
    error_message = "bucket_name must be 3 to 55 lower-case letters, digits, dots and hyphens (room for -replica)."
  }
}

variable "prefix" {
  description = "Key prefix of the target: [target] url is s3://BUCKET/PREFIX."
  type        = string
  default     = "standby"

  validation {
    condition     = length(var.prefix) > 0
    error_message = "prefix must not be empty."
  }
}

variable "server_id" {
  description = "server_id of the mailbox server in its standby.toml."
  type        = string

  validation {
    condition     = length(var.server_id) > 0
    error_message = "server_id must not be empty."
  }
}

variable "shipper_trusted_arns" {
  description = "IAM principals that may assume the shipper role (the primary's identity)."
  type        = list(string)

  validation {
    condition     = length(var.shipper_trusted_arns) > 0
    error_message = "Give at least one principal for the shipper."
  }
}

variable "standby_trusted_arns" {
  description = "IAM principals that may assume the standby role (the standby's identity)."
  type        = list(string)

  validation {
    condition     = length(var.standby_trusted_arns) > 0
    error_message = "Give at least one principal for the standby."
  }
}

variable "kms_admin_arns" {
  description = "IAM principals that administer the KMS keys; include the identity running terraform."
  type        = list(string)

  validation {
    condition     = length(var.kms_admin_arns) > 0
    error_message = "Give at least one key administrator."
  }
}

variable "object_lock" {
  description = "Object Lock mode and default retention days; null for none."
  type = object({
    mode           = optional(string, "GOVERNANCE")
    retention_days = optional(number, 30)
  })
  default = null
}

variable "lifecycle_rules" {
  description = "Lifecycle of the bucket and its replica (see the standby-bucket module)."
  type = object({
    abort_incomplete_multipart_upload_days = optional(number, 7)
    noncurrent_version_expiration_days     = optional(number, 30)
    transition_days                        = optional(number)
    transition_storage_class               = optional(string, "GLACIER_IR")
  })
  default = {}
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default = {
    application = "standby"
  }
}
