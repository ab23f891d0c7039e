locals {
  labels = merge(var.labels, {
    app         = "genx-shop"
    environment = var.environment
    managed-by  = "terraform"
  })

  shop_url = "https://${var.domain}"

  # Secret Manager secret ids (the app maps SECRET_NAME -> secret-name). Values are
  # added out of band with `gcloud secrets versions add`; Terraform only creates the
  # empty secrets, so no value ever enters the state.
  secret_ids = toset([
    "stripe-secret-key",
    "stripe-webhook-secret",
    "license-key-pepper",
    "key-derivation-secret",
    "key-derivation-secrets-previous", # optional: old derivation secrets, see secret-rotation runbook
    "signing-private-key",
    "sendgrid-api-key",
    "pseudonym-key", # keyed hashes of networks in audits and of rate-limit ids
  ])

  # Deriving or hashing a license key / download link needs the pepper and every
  # derivation secret still in use (commerce.domain.license_keys.KeyMaterial).
  key_material_secrets = [
    "license-key-pepper",
    "key-derivation-secret",
    "key-derivation-secrets-previous",
  ]

  # One entry per entry point in functions/main.py. Sizing is deliberate:
  #   memory       - Python + the clients that function imports, with headroom
  #   concurrency  - I/O-bound handlers share an instance; singletons use 1
  #   max          - caps cost and Firestore contention; workers stay small so a
  #                  burst of retries cannot hammer SendGrid or Stripe
  #   min          - 0 by default (production overrides the customer-facing ones)
  functions = {
    checkout = {
      description = "Creates a Stripe Checkout Session for the storefront."
      path_rules  = ["/api/checkout"]
      public      = true
      # Waits on Stripe (about 1 s); 20 concurrent requests per instance keep the
      # instance count low during a launch spike.
      memory          = "256Mi"
      cpu             = "1"
      timeout_seconds = 30
      min_instances   = 0
      max_instances   = 20
      concurrency     = 20
      secrets         = ["stripe-secret-key", "pseudonym-key"]
      project_roles   = ["roles/datastore.user"] # rate limits, pending checkout records
      enqueues_email  = false
    }
    stripe_webhook = {
      description = "Verifies and records Stripe events; fulfils paid orders exactly once."
      path_rules  = ["/api/webhook/stripe"]
      public      = true
      # Imports stripe, Firestore and Cloud Tasks clients: 512Mi. Each event runs
      # Firestore transactions, so concurrency stays moderate to limit contention.
      # 60 s is far above Stripe's own delivery timeout; Stripe retries failures.
      memory          = "512Mi"
      cpu             = "1"
      timeout_seconds = 60
      min_instances   = 0
      max_instances   = 10
      concurrency     = 10
      secrets         = concat(["stripe-webhook-secret", "stripe-secret-key"], local.key_material_secrets)
      project_roles   = ["roles/datastore.user"] # NOT the artifacts bucket
      enqueues_email  = true
    }
    download = {
      description = "Redeems a download token and redirects to a short-lived signed URL."
      path_rules  = ["/d/*"]
      public      = true
      # One Firestore transaction and one signBlob call, then a redirect: light and
      # fast, so many requests share an instance.
      memory          = "256Mi"
      cpu             = "1"
      timeout_seconds = 30
      min_instances   = 0
      max_instances   = 20
      concurrency     = 40
      secrets         = ["pseudonym-key"] # rate-limit ids and the audit's network hash; tokens are looked up by plain SHA-256
      project_roles   = ["roles/datastore.user"]
      enqueues_email  = false
    }
    send_email = {
      description = "Cloud Tasks worker: renders and sends one e-mail through SendGrid."
      path_rules  = []
      public      = false
      # Called only by Cloud Tasks. Small concurrency and max bound the SendGrid call
      # rate whatever the queue backlog; the queue retries with backoff.
      memory          = "256Mi"
      cpu             = "1"
      timeout_seconds = 60
      min_instances   = 0
      max_instances   = 5
      concurrency     = 5
      secrets         = concat(["sendgrid-api-key"], local.key_material_secrets)
      project_roles   = ["roles/datastore.user"]
      enqueues_email  = true # a deferred e-mail: the worker queues its retry (email_retry)
    }
    order_status = {
      description = "Answers the success page's polling for an order's state."
      path_rules  = ["/api/order-status"]
      public      = true
      # One document read per request: tiny, short timeout, high concurrency.
      memory          = "256Mi"
      cpu             = "1"
      timeout_seconds = 10
      min_instances   = 0
      max_instances   = 10
      concurrency     = 50
      secrets         = ["pseudonym-key"] # rate-limit ids
      # Reads the order, and counts every poll in a rate-limit document: writes.
      project_roles  = ["roles/datastore.user"]
      enqueues_email = false
    }
    resend_links = {
      description = "Re-sends a customer's download links and license key by e-mail."
      path_rules  = ["/api/resend"]
      public      = true
      # An abuse surface (it sends e-mail): kept small; the app rate-limits per
      # address and network as well.
      memory          = "256Mi"
      cpu             = "1"
      timeout_seconds = 30
      min_instances   = 0
      max_instances   = 5
      concurrency     = 10
      # Only the pepper (the address's customer id): grants and the e-mail job are
      # made by send_email, which holds the derivation secrets.
      secrets        = ["license-key-pepper", "pseudonym-key"]
      project_roles  = ["roles/datastore.user"]
      enqueues_email = true
    }
    license_api = {
      description = "License activation, validation and deactivation for the plugin."
      path_rules  = ["/api/license/*"]
      public      = true
      # Called by every installed plugin: short requests, high concurrency.
      memory          = "256Mi"
      cpu             = "1"
      timeout_seconds = 15
      min_instances   = 0
      max_instances   = 20
      concurrency     = 40
      # The pepper looks keys up; update links are random tokens, so no derivation
      # secret, and no e-mail is ever queued from here (tests/infra/test_iam_contract.py).
      secrets        = ["signing-private-key", "license-key-pepper", "pseudonym-key"]
      project_roles  = ["roles/datastore.user"]
      enqueues_email = false
    }
    reconcile = {
      description = "Scheduled: compares recent Stripe sessions with orders and repairs missed fulfilments."
      path_rules  = []
      public      = false
      # Pages through Stripe's list API: long timeout; one run at a time so two
      # overlapping runs never repair the same order concurrently.
      memory          = "512Mi"
      cpu             = "1"
      timeout_seconds = 540
      min_instances   = 0
      max_instances   = 1
      concurrency     = 1
      secrets         = concat(["stripe-secret-key"], local.key_material_secrets)
      project_roles   = ["roles/datastore.user"]
      enqueues_email  = true # a repaired order is fulfilled, which enqueues its e-mail
    }
    email_sweeper = {
      description = "Scheduled: re-enqueues e-mail jobs that were recorded but never ran."
      path_rules  = []
      public      = false
      # A singleton batch job.
      memory          = "256Mi"
      cpu             = "1"
      timeout_seconds = 300
      min_instances   = 0
      max_instances   = 1
      concurrency     = 1
      secrets         = []
      project_roles   = ["roles/datastore.user"]
      enqueues_email  = true
    }
  }

  # Sizing after the per-environment overrides (var.functions).
  function_sizing = {
    for name, fn in local.functions : name => {
      memory          = lookup(lookup(var.functions, name, {}), "memory", fn.memory)
      cpu             = lookup(lookup(var.functions, name, {}), "cpu", fn.cpu)
      timeout_seconds = tonumber(lookup(lookup(var.functions, name, {}), "timeout_seconds", fn.timeout_seconds))
      min_instances   = tonumber(lookup(lookup(var.functions, name, {}), "min_instances", fn.min_instances))
      max_instances   = tonumber(lookup(lookup(var.functions, name, {}), "max_instances", fn.max_instances))
      concurrency     = tonumber(lookup(lookup(var.functions, name, {}), "concurrency", fn.concurrency))
    }
  }

  # send_email is deployed first (its URL is the tasks' target); every other function
  # gets that URL in EMAIL_WORKER_URL.
  email_worker     = "send_email"
  email_queue_name = "email"
  public_functions = { for name, fn in local.functions : name => fn if fn.public }
  other_functions  = { for name, fn in local.functions : name => fn if name != local.email_worker }
  enqueuers        = toset([for name, fn in local.functions : name if fn.enqueues_email])

  # Non-secret settings shared by every function (names = commerce.settings fields).
  base_env = merge(var.app_settings, {
    ENVIRONMENT                   = var.environment
    GCP_PROJECT                   = var.project_id
    GCP_REGION                    = var.region
    ARTIFACTS_BUCKET              = google_storage_bucket.artifacts.name
    STOREFRONT_URL                = local.shop_url
    STOREFRONT_ORIGINS            = local.shop_url
    PUBLIC_BASE_URL               = local.shop_url
    CHECKOUT_URL                  = "${local.shop_url}/api/checkout"
    ORDER_STATUS_URL              = "${local.shop_url}/api/order-status"
    RESEND_URL                    = "${local.shop_url}/api/resend"
    TASKS_QUEUE                   = local.email_queue_name # literal: the queue refers to send_email's URL
    TASKS_LOCATION                = var.region
    TASKS_INVOKER_SERVICE_ACCOUNT = google_service_account.tasks_invoker.email
    MAIL_BACKEND                  = "sendgrid"
    SECRETS_BACKEND               = "secret-manager"
    # Private functions are called on their own URL; functions.tf overrides this for
    # the public ones, which sit behind the load balancer.
    TRUSTED_PROXY_HOPS = tostring(local.proxy_hops_by_shape.direct)
  })

  # X-Forwarded-For entries Google's front ends append before a function sees the
  # request, per deployment shape; commerce.domain.network.client_address takes the
  # entry this many from the right as the client (anything further left is whatever
  # the client sent). tests/storefront/test_proxy_hops.py drives each shape.
  #   load_balancer: external HTTPS LB -> serverless NEG -> Cloud Run. The LB appends
  #                  "<client-ip>,<lb-ip>"; Cloud Run adds nothing behind it.
  #   direct:        the function's own *.run.app URL (Cloud Scheduler, Cloud Tasks).
  #                  Cloud Run's front end appends "<client-ip>".
  proxy_hops_by_shape = {
    load_balancer = 2
    direct        = 1
  }
}
