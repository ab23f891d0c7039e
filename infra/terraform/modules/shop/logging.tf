# Secrets in URLs never reach stored logs.
#
# Two platform logs record every request's full URL (path and query string) and its
# Referer, and neither can be told to leave them out:
#   - the load balancer's request log (resource.type "http_load_balancer", log
#     "requests"): every backend service with log_config (load_balancer.tf) and every
#     backend bucket, for which logging is always on;
#   - Cloud Run's request log (resource.type "cloud_run_revision", log
#     "run.googleapis.com/requests"), written for every 2nd gen function.
# A download link carries its token in the path (/d/<token>); the success page and the
# order-status poll carry the Checkout Session id in the query (?session_id=), and the
# pages those URLs load send them on as the Referer. These exclusions drop exactly those
# entries from the _Default sink, the only sink of the project, so they are never
# stored (nor billed); all other request log entries stay. Exclusions cannot edit an
# entry, so the whole entry goes: the app's own JSON log lines (which redact tokens)
# and the Cloud Run metrics still show those requests. docs/security.md says what is
# logged where; tests/infra/test_log_exclusions.py evaluates these filters against
# entries built from the URLs the code produces and the routes of the URL map.
locals {
  request_logs = {
    load_balancer = "resource.type=\"http_load_balancer\" AND log_id(\"requests\")"
    cloud_run     = "resource.type=\"cloud_run_revision\" AND log_id(\"run.googleapis.com/requests\")"
  }
  # `:` is "has": a case-insensitive substring match on the field.
  secret_url_filter = "(httpRequest.requestUrl:\"/d/\" OR httpRequest.requestUrl:\"session_id=\" OR httpRequest.referer:\"/d/\" OR httpRequest.referer:\"session_id=\")"
}

resource "google_logging_project_exclusion" "secret_urls" {
  for_each = local.request_logs

  project     = var.project_id
  name        = "${var.name_prefix}-${replace(each.key, "_", "-")}-secret-urls"
  description = "Request log entries whose URL or Referer carries a download token or Checkout Session id (docs/security.md)."
  filter      = "${each.value} AND ${local.secret_url_filter}"

  depends_on = [google_project_service.enabled]
}
