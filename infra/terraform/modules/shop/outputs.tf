output "load_balancer_ip" {
  description = "Point the shop domain's A record here (see docs/runbooks/first-deploy.md)."
  value       = google_compute_global_address.shop.address
}

output "shop_url" {
  description = "Public URL of the shop."
  value       = local.shop_url
}

output "function_uris" {
  description = "Direct Cloud Run URIs (not reachable from the internet: ingress is restricted)."
  value       = { for name, fn in local.deployed : name => fn.uri }
}

output "function_service_accounts" {
  description = "Each function's own service account."
  value       = { for name, fn in local.deployed : name => fn.service_account_email }
}

output "buckets" {
  description = "Bucket names."
  value = {
    artifacts       = google_storage_bucket.artifacts.name
    storefront      = google_storage_bucket.storefront.name
    backups         = google_storage_bucket.backups.name
    function_source = google_storage_bucket.function_source.name
  }
}

output "secret_ids" {
  description = "Secrets to fill with `gcloud secrets versions add` before first use."
  value       = sort(tolist(local.secret_ids))
}

output "stripe_webhook_url" {
  description = "Register this endpoint in the Stripe dashboard."
  value       = "${local.shop_url}/api/webhook/stripe"
}

output "storefront_build_env" {
  description = "Environment for `make site` so the pages call the load balancer's API paths."
  value = {
    PUBLIC_BASE_URL  = local.shop_url
    STOREFRONT_URL   = local.shop_url
    CHECKOUT_URL     = local.base_env.CHECKOUT_URL
    ORDER_STATUS_URL = local.base_env.ORDER_STATUS_URL
    RESEND_URL       = local.base_env.RESEND_URL
  }
}
