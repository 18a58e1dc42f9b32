output "standby_toml" {
  description = "The [target] section for standby.toml on the primary and at the standby."
  value       = module.site.standby_toml
}

output "target" {
  description = "The [target] section as an object, one attribute per key."
  value       = module.site.target
}

output "shipper_role_arn" {
  description = "Role the primary assumes for standby ship and standby stream."
  value       = module.site.shipper_role_arn
}

output "standby_role_arn" {
  description = "Role the standby assumes for standby pull and standby verify."
  value       = module.site.standby_role_arn
}
