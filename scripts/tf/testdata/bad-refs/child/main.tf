variable "size" {
  type = number
}

variable "zone" {
  type = string
}

variable "optional" {
  type    = string
  default = ""
}

output "id" {
  value = "${var.zone}-${var.size}-${var.optional}"
}
