output "load_balancer_ip" {
  description = "A record target for the shop domain."
  value       = module.shop.load_balancer_ip
}

output "shop_url" {
  description = "Public URL (BASE_URL for make smoke)."
  value       = module.shop.shop_url
}

output "stripe_webhook_url" {
  description = "Endpoint to register in Stripe."
  value       = module.shop.stripe_webhook_url
}

output "buckets" {
  description = "Bucket names."
  value       = module.shop.buckets
}

output "function_service_accounts" {
  description = "Each function's own service account."
  value       = module.shop.function_service_accounts
}

output "secret_ids" {
  description = "Secrets to fill before first use."
  value       = module.shop.secret_ids
}

output "storefront_build_env" {
  description = "Environment for `make site` (API paths on the shop domain)."
  value       = module.shop.storefront_build_env
}
