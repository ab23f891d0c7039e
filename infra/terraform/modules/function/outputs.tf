output "name" {
  description = "Function name (also the name of its Cloud Run service)."
  value       = google_cloudfunctions2_function.this.name
}

output "uri" {
  description = "HTTPS URI of the function's Cloud Run service."
  value       = google_cloudfunctions2_function.this.service_config[0].uri
}

output "service_account_email" {
  description = "E-mail of the function's own service account."
  value       = google_service_account.this.email
}

output "service_account_id" {
  description = "Full resource id of the function's own service account."
  value       = google_service_account.this.name
}
