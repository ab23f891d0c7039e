# Plugin release archives. Private: customers only ever get a short-lived V4 signed
# URL minted by the download function, never a public object.
resource "google_storage_bucket" "artifacts" {
  project                     = var.project_id
  name                        = "${var.project_id}-artifacts"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  versioning {
    enabled = true # an overwritten or deleted release can be restored
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 365
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# Static storefront, served through the load balancer's backend bucket with Cloud CDN.
# A backend bucket reads objects anonymously, so this bucket (and only this one) is
# publicly readable; it holds nothing but the built site.
resource "google_storage_bucket" "storefront" {
  #checkov:skip=CKV_GCP_114:Public by design: static storefront behind Cloud CDN; holds only the public site.
  #checkov:skip=CKV_GCP_62:No usage logs: they would store the success page's ?session_id= (cs_uri, cs_referer) where no log exclusion reaches; the load balancer's request log records these requests instead (logging.tf, docs/security.md).
  project                     = var.project_id
  name                        = "${var.project_id}-storefront"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "inherited"
  force_destroy               = false
  labels                      = local.labels

  website {
    main_page_suffix = "index.html"
    not_found_page   = "404.html"
  }

  # No `logging` block (usage logs): see the checkov skip above.

  versioning {
    enabled = true # roll back a bad site upload
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket_iam_member" "storefront_public_read" {
  #checkov:skip=CKV_GCP_28:The storefront is a public website; the CDN backend bucket needs anonymous object reads.
  bucket = google_storage_bucket.storefront.name
  role   = "roles/storage.objectViewer"
  member = "allUsers"
}

# Daily Firestore exports. Private; versioned so a deleted export is recoverable for
# 30 days; exports older than backup_retention_days are deleted.
resource "google_storage_bucket" "backups" {
  project                     = var.project_id
  name                        = "${var.project_id}-backups"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  versioning {
    enabled = true
  }

  # Exports are read only in a restore: cheaper storage after a week.
  lifecycle_rule {
    condition {
      age                   = 7
      matches_storage_class = ["STANDARD"]
    }
    action {
      type          = "SetStorageClass"
      storage_class = "NEARLINE"
    }
  }

  lifecycle_rule {
    condition {
      age = var.backup_retention_days
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# Source bundles for Cloud Build. Objects are content-addressed (sha256 in the name),
# so a new bundle is a new object and redeploys every function.
resource "google_storage_bucket" "function_source" {
  project                     = var.project_id
  name                        = "${var.project_id}-function-source"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  logging {
    log_bucket = google_storage_bucket.access_logs.name
  }

  versioning {
    enabled = true
  }

  # Old bundles are only needed for a rebuild of an old revision; Terraform
  # re-uploads the current bundle if it was deleted.
  lifecycle_rule {
    condition {
      age = 90
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

resource "google_storage_bucket_object" "source_bundle" {
  bucket = google_storage_bucket.function_source.name
  name   = "functions-source-${filesha256(var.source_bundle_path)}.zip"
  source = var.source_bundle_path
}

# Usage logs (who read or wrote which object, hourly CSV) of the other buckets. Kept a
# year: long enough to answer "was this release downloaded from outside a signed URL?".
resource "google_storage_bucket" "access_logs" {
  #checkov:skip=CKV_GCP_62:This is the access-log sink itself; logging it into itself would loop.
  project                     = var.project_id
  name                        = "${var.project_id}-access-logs"
  location                    = var.region
  storage_class               = "STANDARD"
  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false
  labels                      = local.labels

  versioning {
    enabled = true
  }

  lifecycle_rule {
    condition {
      age = 365
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 7
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}

# Cloud Storage writes usage logs as this Google-owned group.
resource "google_storage_bucket_iam_member" "access_logs_writer" {
  bucket = google_storage_bucket.access_logs.name
  role   = "roles/storage.objectCreator"
  member = "group:cloud-storage-analytics@google.com"
}
