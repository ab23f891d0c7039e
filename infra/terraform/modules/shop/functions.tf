# Every function is an instance of modules/function, which creates the function
# together with its own service account. send_email is declared on its own because
# the others need its URL (EMAIL_WORKER_URL) and a for_each cannot refer to itself.

module "email_worker" {
  source = "../function"

  project_id               = var.project_id
  region                   = var.region
  name_prefix              = var.name_prefix
  entry_point              = local.email_worker
  description              = local.functions[local.email_worker].description
  source_bucket            = google_storage_bucket.function_source.name
  source_object            = google_storage_bucket_object.source_bundle.name
  build_service_account_id = google_service_account.function_builder.id
  memory                   = local.function_sizing[local.email_worker].memory
  cpu                      = local.function_sizing[local.email_worker].cpu
  timeout_seconds          = local.function_sizing[local.email_worker].timeout_seconds
  min_instances            = local.function_sizing[local.email_worker].min_instances
  max_instances            = local.function_sizing[local.email_worker].max_instances
  concurrency              = local.function_sizing[local.email_worker].concurrency
  # Internal only: Cloud Tasks counts as internal traffic for Cloud Run ingress.
  ingress               = "ALLOW_INTERNAL_ONLY"
  environment_variables = local.base_env
  secret_ids            = local.functions[local.email_worker].secrets
  project_roles         = local.functions[local.email_worker].project_roles
  # Only the tasks identity may invoke the worker (OIDC token checked by Cloud Run).
  invokers = ["serviceAccount:${google_service_account.tasks_invoker.email}"]
  labels   = local.labels

  depends_on = [
    google_secret_manager_secret.app,
    google_project_service.enabled,
    # The build runs as function_builder: its grants exist before the first build.
    google_project_iam_member.builder,
    google_project_iam_member.builder_reads_staged_source,
    google_storage_bucket_iam_member.builder_reads_source,
  ]
}

module "function" {
  source   = "../function"
  for_each = local.other_functions

  project_id               = var.project_id
  region                   = var.region
  name_prefix              = var.name_prefix
  entry_point              = each.key
  description              = each.value.description
  source_bucket            = google_storage_bucket.function_source.name
  source_object            = google_storage_bucket_object.source_bundle.name
  build_service_account_id = google_service_account.function_builder.id
  memory                   = local.function_sizing[each.key].memory
  cpu                      = local.function_sizing[each.key].cpu
  timeout_seconds          = local.function_sizing[each.key].timeout_seconds
  min_instances            = local.function_sizing[each.key].min_instances
  max_instances            = local.function_sizing[each.key].max_instances
  concurrency              = local.function_sizing[each.key].concurrency
  # Public functions are reachable only through the load balancer (Cloud Armor in
  # front); scheduled ones only from inside Google (Cloud Scheduler is internal).
  ingress = each.value.public ? "ALLOW_INTERNAL_AND_GCLB" : "ALLOW_INTERNAL_ONLY"
  environment_variables = merge(local.base_env, {
    EMAIL_WORKER_URL   = module.email_worker.uri
    TRUSTED_PROXY_HOPS = tostring(local.proxy_hops_by_shape[each.value.public ? "load_balancer" : "direct"])
  })
  secret_ids    = each.value.secrets
  project_roles = each.value.project_roles
  invokers = (
    each.value.public
    ? ["allUsers"]
    : ["serviceAccount:${google_service_account.scheduler_invoker.email}"]
  )
  labels = local.labels

  depends_on = [
    google_secret_manager_secret.app,
    google_project_service.enabled,
    # The build runs as function_builder: its grants exist before the first build.
    google_project_iam_member.builder,
    google_project_iam_member.builder_reads_staged_source,
    google_storage_bucket_iam_member.builder_reads_source,
  ]
}

locals {
  # entry point -> module outputs, for the grants, routes and jobs below.
  deployed = merge(
    { (local.email_worker) = module.email_worker },
    module.function,
  )
}
