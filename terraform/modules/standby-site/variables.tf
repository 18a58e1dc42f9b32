variable "bucket_name" {
  description = "Name of the bucket that receives the server's snapshot sets and streamed redo (3 to 63 lower-case letters, digits, dots and hyphens)."
  type        = string

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.bucket_name))
    error_message = "The bucket name must be 3 to 63 lower-case letters, digits, dots and hyphens, starting and ending with a letter or digit."
  }
}

variable "prefix" {
  description = "Key prefix of the target in the bucket (the PREFIX of s3://BUCKET/PREFIX). The server's objects live under PREFIX/SERVER_ID/."
  type        = string
  default     = "standby"

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$", var.prefix))
    error_message = "prefix must be one or more path segments of letters, digits, '.', '_' and '-', separated by '/', without a leading or trailing '/'."
  }
}

variable "server_id" {
  description = "The mailbox server's id, as server_id in its standby.toml (its zimbraId). The roles reach only PREFIX/SERVER_ID/."
  type        = string

  validation {
    condition     = can(regex("^[A-Za-z0-9._-]{1,127}$", var.server_id))
    error_message = "server_id must be 1 to 127 letters, digits, '.', '_' or '-' (it names a key prefix)."
  }
}

variable "name" {
  description = "Name stem of the IAM roles and policies (NAME-shipper, NAME-standby, NAME-replication)."
  type        = string
  default     = "standby"

  validation {
    condition     = can(regex("^[A-Za-z0-9+=,.@_-]{1,52}$", var.name))
    error_message = "name must be 1 to 52 characters allowed in IAM role names (letters, digits and +=,.@_-), leaving room for the suffix."
  }
}

variable "shipper_trusted_arns" {
  description = "IAM principals (ARNs) allowed to assume the shipper role: the identity standby ship and standby stream run as on the primary."
  type        = list(string)

  validation {
    condition     = length(var.shipper_trusted_arns) > 0 && alltrue([for a in var.shipper_trusted_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:", a))])
    error_message = "Give at least one IAM ARN (arn:aws:iam::ACCOUNT:role/NAME or :user/NAME)."
  }
}

variable "standby_trusted_arns" {
  description = "IAM principals (ARNs) allowed to assume the standby role: the identity standby pull and standby verify run as at the standby site."
  type        = list(string)

  validation {
    condition     = length(var.standby_trusted_arns) > 0 && alltrue([for a in var.standby_trusted_arns : can(regex("^arn:aws[a-z-]*:iam::[0-9]{12}:", a))])
    error_message = "Give at least one IAM ARN (arn:aws:iam::ACCOUNT:role/NAME or :user/NAME)."
  }
}

variable "kms_admin_arns" {
  description = "IAM principals (ARNs) that administer the bucket's KMS key (no data access). Include the identity that runs terraform."
  type        = list(string)

  validation {
    condition     = length(var.kms_admin_arns) > 0
    error_message = "Give at least one key administrator: a key nobody administers cannot be changed or deleted."
  }
}

variable "storage_class" {
  description = "Storage class standby ship writes objects with ([target] storage_class)."
  type        = string
  default     = "STANDARD"

  validation {
    condition     = contains(["STANDARD", "STANDARD_IA", "ONEZONE_IA", "INTELLIGENT_TIERING", "GLACIER_IR"], var.storage_class)
    error_message = "storage_class must be STANDARD, STANDARD_IA, ONEZONE_IA, INTELLIGENT_TIERING or GLACIER_IR (classes standby pull reads without a restore)."
  }
}

variable "object_lock" {
  description = "S3 Object Lock: mode GOVERNANCE or COMPLIANCE and default retention in days; null for none. With Object Lock the shipper gets no delete permission, so standby prune --target cannot remove anything: old versions go by retention and lifecycle only. Validated by the standby-bucket module."
  type = object({
    mode           = optional(string, "GOVERNANCE")
    retention_days = optional(number, 30)
  })
  default = null
}

variable "lifecycle_rules" {
  description = "Lifecycle of the bucket: abort_incomplete_multipart_upload_days, noncurrent_version_expiration_days, and optionally transition_days and transition_storage_class for the server's objects. Validated by the standby-bucket module."
  type = object({
    abort_incomplete_multipart_upload_days = optional(number, 7)
    noncurrent_version_expiration_days     = optional(number, 30)
    transition_days                        = optional(number)
    transition_storage_class               = optional(string, "GLACIER_IR")
  })
  default = {}
}

variable "replication_enabled" {
  description = "Replicate every object version to the bucket named in replica (another region's standby-bucket). A plain flag, apart from replica, so that the plan knows it before the replica exists."
  type        = bool
  default     = false
}

variable "replica" {
  description = "Where replication_enabled sends the replicas: the destination bucket's ARN, its KMS key's ARN, and the storage class of the replicas. The destination must be versioned, let this module's replication role encrypt with its key (standby-bucket's kms_users.replicate), and have Object Lock if this bucket has it."
  type = object({
    bucket_arn    = string
    kms_key_arn   = string
    storage_class = optional(string, "STANDARD")
  })
  default = null

  validation {
    condition     = var.replica == null ? true : can(regex("^arn:aws[a-z-]*:s3:::[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.replica.bucket_arn)) && can(regex("^arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/", var.replica.kms_key_arn))
    error_message = "replica.bucket_arn must be an S3 bucket ARN and replica.kms_key_arn a KMS key ARN."
  }
}

variable "tags" {
  description = "Tags for every resource this module creates."
  type        = map(string)
  default     = {}
}
