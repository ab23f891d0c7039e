variable "project_id" {
  description = "Project that hosts the function."
  type        = string
}

variable "region" {
  description = "Region of the function (and of its Cloud Run service)."
  type        = string
}

variable "name_prefix" {
  description = "Prefix of the function name, e.g. \"shop\" gives shop-stripe-webhook."
  type        = string
}

variable "entry_point" {
  description = "Python function in main.py that serves this Cloud Function."
  type        = string

  validation {
    condition     = can(regex("^[a-z][a-z0-9_]{2,26}$", var.entry_point))
    error_message = "entry_point must be a snake_case Python name of 3 to 27 characters."
  }
}

variable "description" {
  description = "What the function does (shown in the console)."
  type        = string
}

variable "source_bucket" {
  description = "Bucket holding the source bundle zip."
  type        = string
}

variable "source_object" {
  description = "Object name of the source bundle zip (content-addressed, so a new bundle redeploys)."
  type        = string
}

variable "build_service_account_id" {
  description = "Full resource id of the service account Cloud Build uses to build the function."
  type        = string
}

variable "runtime" {
  description = "Cloud Functions runtime."
  type        = string
  default     = "python311"
}

variable "memory" {
  description = "Memory of one instance, e.g. 256Mi."
  type        = string
}

variable "cpu" {
  description = "vCPUs of one instance (\"1\" is needed for concurrency above 1)."
  type        = string
}

variable "timeout_seconds" {
  description = "Request timeout."
  type        = number
}

variable "min_instances" {
  description = "Instances kept warm (0: scale to zero, every first request after idling pays a cold start). See docs/infrastructure.md, \"Warm instances and startup CPU boost\"."
  type        = number
  default     = 0
}

variable "max_instances" {
  description = "Upper bound on instances (also caps cost and Firestore contention)."
  type        = number
}

variable "concurrency" {
  description = "Requests served at once by one instance."
  type        = number
}

variable "ingress" {
  description = "ALLOW_INTERNAL_AND_GCLB for functions behind the load balancer, ALLOW_INTERNAL_ONLY for workers called by Cloud Tasks or Cloud Scheduler."
  type        = string

  validation {
    condition     = contains(["ALLOW_INTERNAL_ONLY", "ALLOW_INTERNAL_AND_GCLB"], var.ingress)
    error_message = "ingress must be ALLOW_INTERNAL_ONLY or ALLOW_INTERNAL_AND_GCLB (never ALLOW_ALL: public traffic goes through Cloud Armor)."
  }
}

variable "environment_variables" {
  description = "Non-secret settings. Secrets never go here: the app reads them from Secret Manager."
  type        = map(string)
}

variable "secret_ids" {
  description = "Secret Manager secret ids this function may read (secretAccessor on each, nothing else)."
  type        = set(string)
  default     = []
}

variable "project_roles" {
  description = "Project-level roles of the function's own service account (e.g. roles/datastore.user)."
  type        = set(string)
  default     = []
}

variable "invokers" {
  description = "Members allowed to invoke the function (roles/run.invoker on its Cloud Run service): \"allUsers\" for public endpoints, a service account for workers."
  type        = set(string)
}

variable "labels" {
  description = "Labels put on the function."
  type        = map(string)
  default     = {}
}
