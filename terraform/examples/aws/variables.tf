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

variable "object_lock_retention_days" {
  description = "Days every new version stays locked (Object Lock, GOVERNANCE mode); null for no Object Lock. Chosen once, when the bucket is created."
  type        = number
  default     = null

  validation {
    condition     = var.object_lock_retention_days == null ? true : var.object_lock_retention_days >= 1
    error_message = "object_lock_retention_days must be null or at least 1."
  }
}

variable "tags" {
  description = "Tags for every resource."
  type        = map(string)
  default = {
    application = "standby"
  }
}
