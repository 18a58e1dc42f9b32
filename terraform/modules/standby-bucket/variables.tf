variable "name" {
  description = "Name of the bucket (3 to 63 lower-case letters, digits, dots and hyphens)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name))
    error_message = "The bucket name must be 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit."
  }
}

variable "kms_admin_arns" {
  description = "IAM principals (ARNs) that administer the bucket's KMS key. They cannot encrypt or decrypt with it. Include the identity that runs terraform, or it cannot update the key later."
  type        = list(string)

  validation {
    condition     = length(var.kms_admin_arns) > 0 && alltrue([for a in var.kms_admin_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:", a))])
    error_message = "Give at least one IAM ARN (arn:aws:iam::ACCOUNT:...): a key nobody administers cannot be changed or deleted."
  }
}

variable "kms_users" {
  description = "IAM principals (ARNs) that may use the key for data, each only through S3 in the bucket's region: write (kms:GenerateDataKey and kms:Decrypt, to upload), read (kms:Decrypt, to download), replicate (kms:Encrypt and kms:GenerateDataKey, S3 replication roles writing replicas into this bucket)."
  type = object({
    write     = optional(list(string), [])
    read      = optional(list(string), [])
    replicate = optional(list(string), [])
  })
  default = {}

  validation {
    condition     = alltrue([for a in concat(var.kms_users.write, var.kms_users.read, var.kms_users.replicate) : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:", a))])
    error_message = "Each key user must be an IAM ARN (arn:aws:iam::ACCOUNT:role/NAME)."
  }
}

variable "kms_deletion_window_days" {
  description = "Days KMS waits before deleting the key once deletion is scheduled."
  type        = number
  default     = 30

  validation {
    condition     = var.kms_deletion_window_days >= 7 && var.kms_deletion_window_days <= 30 && floor(var.kms_deletion_window_days) == var.kms_deletion_window_days
    error_message = "KMS accepts a deletion window of 7 to 30 whole days."
  }
}

variable "object_lock" {
  description = "S3 Object Lock for every new object version: mode GOVERNANCE (principals with s3:BypassGovernanceRetention may still delete) or COMPLIANCE (nobody may, not even the account root), and the default retention in days. null: no Object Lock. Object Lock can only be chosen when the bucket is created, and never turned off."
  type = object({
    mode           = optional(string, "GOVERNANCE")
    retention_days = optional(number, 30)
  })
  default = null

  validation {
    condition     = var.object_lock == null ? true : contains(["GOVERNANCE", "COMPLIANCE"], var.object_lock.mode)
    error_message = "object_lock.mode must be GOVERNANCE or COMPLIANCE."
  }

  validation {
    condition     = var.object_lock == null ? true : var.object_lock.retention_days >= 1 && floor(var.object_lock.retention_days) == var.object_lock.retention_days
    error_message = "object_lock.retention_days must be a whole number of days, at least 1."
  }
}

variable "lifecycle_rules" {
  description = "What S3 cleans up by itself: incomplete multipart uploads after abort_incomplete_multipart_upload_days (an interrupted ship resumes within this time, or starts again), versions no longer current after noncurrent_version_expiration_days (what a prune or an overwrite left behind), and, when transition_days is set, objects under transition_prefix moved to transition_storage_class after that many days."
  type = object({
    abort_incomplete_multipart_upload_days = optional(number, 7)
    noncurrent_version_expiration_days     = optional(number, 30)
    transition_prefix                      = optional(string, "")
    transition_days                        = optional(number)
    transition_storage_class               = optional(string, "GLACIER_IR")
  })
  default = {}

  validation {
    condition     = var.lifecycle_rules.abort_incomplete_multipart_upload_days >= 1 && floor(var.lifecycle_rules.abort_incomplete_multipart_upload_days) == var.lifecycle_rules.abort_incomplete_multipart_upload_days
    error_message = "lifecycle_rules.abort_incomplete_multipart_upload_days must be a whole number of days, at least 1."
  }

  validation {
    condition     = var.lifecycle_rules.noncurrent_version_expiration_days >= 1 && floor(var.lifecycle_rules.noncurrent_version_expiration_days) == var.lifecycle_rules.noncurrent_version_expiration_days
    error_message = "lifecycle_rules.noncurrent_version_expiration_days must be a whole number of days, at least 1."
  }

  validation {
    condition     = var.lifecycle_rules.transition_days == null ? true : var.lifecycle_rules.transition_days >= 1 && floor(var.lifecycle_rules.transition_days) == var.lifecycle_rules.transition_days
    error_message = "lifecycle_rules.transition_days must be null or a whole number of days, at least 1."
  }

  validation {
    condition     = contains(["STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"], var.lifecycle_rules.transition_storage_class)
    error_message = "lifecycle_rules.transition_storage_class must be STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING or GLACIER_IR: GLACIER and DEEP_ARCHIVE need a restore request before standby pull can read an object."
  }
}

variable "tags" {
  description = "Tags for every resource this module creates."
  type        = map(string)
  default     = {}
}
