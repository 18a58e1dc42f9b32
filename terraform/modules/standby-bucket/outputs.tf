output "bucket" {
  description = "Name of the bucket."
  value       = aws_s3_bucket.this.id
}

output "bucket_arn" {
  description = "ARN of the bucket."
  value       = aws_s3_bucket.this.arn

  # A replication rule may name this bucket only once it is versioned.
  depends_on = [aws_s3_bucket_versioning.this]
}

output "region" {
  description = "Region of the bucket."
  value       = data.aws_region.current.region
}

output "kms_key_arn" {
  description = "ARN of the bucket's customer key; uploads must name it (or no key) to be accepted."
  value       = aws_kms_key.this.arn
}

output "object_lock_enabled" {
  description = "Whether the bucket has Object Lock (no version may be deleted before its retention ends)."
  value       = var.object_lock != null
}
