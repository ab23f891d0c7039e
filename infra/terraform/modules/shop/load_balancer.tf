# External HTTPS load balancer for https://<domain>:
#   /api/checkout, /api/webhook/stripe, /d/*, /api/order-status, /api/resend,
#   /api/license/*   -> the public functions (serverless NEGs, Cloud Armor)
#   everything else  -> the storefront bucket (Cloud CDN)
# Plain HTTP only redirects to HTTPS.

resource "google_compute_global_address" "shop" {
  project = var.project_id
  name    = "${var.name_prefix}-lb-ip"

  depends_on = [google_project_service.enabled]
}

resource "google_compute_managed_ssl_certificate" "shop" {
  project = var.project_id
  # The name embeds the domain so a domain change creates the new certificate before
  # the old one is removed.
  name = "${var.name_prefix}-cert-${substr(sha256(var.domain), 0, 8)}"

  managed {
    domains = [var.domain]
  }

  lifecycle {
    create_before_destroy = true
  }

  depends_on = [google_project_service.enabled]
}

resource "google_compute_ssl_policy" "modern" {
  project         = var.project_id
  name            = "${var.name_prefix}-tls-modern"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"

  depends_on = [google_project_service.enabled]
}

resource "google_compute_backend_bucket" "storefront" {
  project     = var.project_id
  name        = "${var.name_prefix}-storefront"
  description = "Static storefront with Cloud CDN."
  bucket_name = google_storage_bucket.storefront.name
  enable_cdn  = true

  cdn_policy {
    cache_mode        = "CACHE_ALL_STATIC"
    default_ttl       = 300
    max_ttl           = 3600
    client_ttl        = 300
    negative_caching  = true
    serve_while_stale = 86400
  }
}

resource "google_compute_region_network_endpoint_group" "function" {
  for_each = local.public_functions

  project               = var.project_id
  region                = var.region
  name                  = "${var.name_prefix}-neg-${replace(each.key, "_", "-")}"
  network_endpoint_type = "SERVERLESS"

  # A 2nd gen function is a Cloud Run service of the same name.
  cloud_run {
    service = local.deployed[each.key].name
  }
}

resource "google_compute_backend_service" "function" {
  for_each = local.public_functions

  project               = var.project_id
  name                  = "${var.name_prefix}-be-${replace(each.key, "_", "-")}"
  description           = "Public function ${each.key}."
  load_balancing_scheme = "EXTERNAL_MANAGED"
  protocol              = "HTTPS"
  security_policy       = google_compute_security_policy.api.id

  backend {
    group = google_compute_region_network_endpoint_group.function[each.key].id
  }

  log_config {
    enable      = true
    sample_rate = 1.0
  }
}

resource "google_compute_url_map" "https" {
  project         = var.project_id
  name            = "${var.name_prefix}-https"
  default_service = google_compute_backend_bucket.storefront.id

  host_rule {
    hosts        = [var.domain]
    path_matcher = "shop"
  }

  path_matcher {
    name            = "shop"
    default_service = google_compute_backend_bucket.storefront.id

    dynamic "path_rule" {
      for_each = local.public_functions
      content {
        paths   = path_rule.value.path_rules
        service = google_compute_backend_service.function[path_rule.key].id
      }
    }
  }
}

resource "google_compute_target_https_proxy" "shop" {
  project          = var.project_id
  name             = "${var.name_prefix}-https"
  url_map          = google_compute_url_map.https.id
  ssl_certificates = [google_compute_managed_ssl_certificate.shop.id]
  ssl_policy       = google_compute_ssl_policy.modern.id
}

resource "google_compute_global_forwarding_rule" "https" {
  project               = var.project_id
  name                  = "${var.name_prefix}-https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_address            = google_compute_global_address.shop.id
  port_range            = "443"
  target                = google_compute_target_https_proxy.shop.id
}

resource "google_compute_url_map" "http_redirect" {
  project = var.project_id
  name    = "${var.name_prefix}-http-redirect"

  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }

  depends_on = [google_project_service.enabled]
}

resource "google_compute_target_http_proxy" "redirect" {
  project = var.project_id
  name    = "${var.name_prefix}-http-redirect"
  url_map = google_compute_url_map.http_redirect.id
}

resource "google_compute_global_forwarding_rule" "http" {
  project               = var.project_id
  name                  = "${var.name_prefix}-http-redirect"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_address            = google_compute_global_address.shop.id
  port_range            = "80"
  target                = google_compute_target_http_proxy.redirect.id
}
