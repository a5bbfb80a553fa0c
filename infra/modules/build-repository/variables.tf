variable "name" {
  description = "Name of the ECR repository, e.g. \"opsbot\"."
  type        = string
}

variable "max_tagged_images" {
  description = "How many tagged images to keep; older ones expire. Keep enough to roll back to any release still in use."
  type        = number
  default     = 200
}

variable "untagged_expiry_days" {
  description = "Days after which untagged images are deleted."
  type        = number
  default     = 7
}
