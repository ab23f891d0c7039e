# Secrets are created empty: their values are added out of band
# (`gcloud secrets versions add ID --data-file=-`, see docs/runbooks/first-deploy.md),
# so no secret value is ever in Terraform code or state. Access is granted per function
# in modules/function (secretAccessor on exactly the secrets each one needs).
resource "google_secret_manager_secret" "app" {
  for_each = local.secret_ids

  project   = var.project_id
  secret_id = each.value
  labels    = local.labels

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}
