variable "size" {
  description = "size"
  type        = number
}

variable "zone" {
  description = "zone"
  type        = string
}

variable "optional" {
  description = "optional"
  type        = string
  default     = ""
}

output "id" {
  description = "id"
  value       = "${var.zone}-${var.size}-${var.optional}"
}

variable "undocumented" {
  default = 1
}

output "bare" {
  value = var.undocumented
}
