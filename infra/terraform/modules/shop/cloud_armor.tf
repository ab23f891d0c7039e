# Cloud Armor in front of the public functions. Per-IP throttling at the edge stops
# floods before they cost a function instance; the app keeps its own finer limits
# (per token, per network) in Firestore.
resource "google_compute_security_policy" "api" {
  project     = var.project_id
  name        = "${var.name_prefix}-api"
  description = "Rate limits and baseline WAF for the shop's API paths."
  type        = "CLOUD_ARMOR"

  # Checkout creates Stripe sessions: a tight per-IP budget.
  rule {
    priority    = 1000
    action      = "throttle"
    description = "Checkout: ${var.checkout_rate_limit_per_minute} requests per IP per minute."

    match {
      expr {
        expression = "request.path.startsWith('/api/checkout')"
      }
    }

    rate_limit_options {
      conform_action = "allow"
      exceed_action  = "deny(429)"
      enforce_on_key = "IP"

      rate_limit_threshold {
        count        = var.checkout_rate_limit_per_minute
        interval_sec = 60
      }
    }
  }

  # Downloads: generous for a person, hostile to a scraper cycling tokens.
  rule {
    priority    = 1100
    action      = "throttle"
    description = "Downloads: ${var.download_rate_limit_per_minute} requests per IP per minute."

    match {
      expr {
        expression = "request.path.startsWith('/d/')"
      }
    }

    rate_limit_options {
      conform_action = "allow"
      exceed_action  = "deny(429)"
      enforce_on_key = "IP"

      rate_limit_threshold {
        count        = var.download_rate_limit_per_minute
        interval_sec = 60
      }
    }
  }

  # Log4Shell probes (preconfigured rule); cheap and removes noise from the logs.
  rule {
    priority    = 2000
    action      = "deny(403)"
    description = "Block Log4j JNDI lookups (CVE-2021-44228)."

    match {
      expr {
        expression = "evaluatePreconfiguredWaf('cve-canary')"
      }
    }
  }

  rule {
    priority    = 2147483647
    action      = "allow"
    description = "Default: allow (the functions validate everything themselves)."

    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
  }

  depends_on = [google_project_service.enabled]
}
