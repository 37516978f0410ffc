# Security groups: clients -> ALB (listener ports) -> gateways (8080). The tasks open
# connections only on 443 (S3, ECR, CloudWatch Logs, Secrets Manager, through a NAT gateway or
# VPC endpoints). The compactor accepts no connection at all.

resource "aws_security_group" "alb" {
  name_prefix = "${var.name}-alb-"
  description = "Sluice ${var.name}: load balancer"
  vpc_id      = var.vpc_id
  tags        = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "alb" {
  for_each = {
    for pair in setproduct(local.https ? [80, 443] : [80], var.allowed_cidr_blocks) :
    "${pair[0]}-${pair[1]}" => { port = pair[0], cidr = pair[1] }
  }

  security_group_id = aws_security_group.alb.id
  description       = "Clients (port ${each.value.port})"
  ip_protocol       = "tcp"
  from_port         = each.value.port
  to_port           = each.value.port
  cidr_ipv4         = each.value.cidr
  tags              = local.tags
}

resource "aws_vpc_security_group_egress_rule" "alb_to_gateways" {
  security_group_id            = aws_security_group.alb.id
  description                  = "Forward to the gateways"
  ip_protocol                  = "tcp"
  from_port                    = local.gateway_port
  to_port                      = local.gateway_port
  referenced_security_group_id = aws_security_group.gateway.id
  tags                         = local.tags
}

resource "aws_security_group" "gateway" {
  name_prefix = "${var.name}-gateway-"
  description = "Sluice ${var.name}: gateway tasks"
  vpc_id      = var.vpc_id
  tags        = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_ingress_rule" "gateway_from_alb" {
  security_group_id            = aws_security_group.gateway.id
  description                  = "HTTP from the load balancer"
  ip_protocol                  = "tcp"
  from_port                    = local.gateway_port
  to_port                      = local.gateway_port
  referenced_security_group_id = aws_security_group.alb.id
  tags                         = local.tags
}

# A gateway hands its commits to the shard's elected committer, another gateway task.
resource "aws_vpc_security_group_ingress_rule" "gateway_from_gateways" {
  count                        = local.committer_election ? 1 : 0
  security_group_id            = aws_security_group.gateway.id
  description                  = "Commit hand-overs from the other gateways"
  ip_protocol                  = "tcp"
  from_port                    = local.gateway_port
  to_port                      = local.gateway_port
  referenced_security_group_id = aws_security_group.gateway.id
  tags                         = local.tags
}

resource "aws_vpc_security_group_egress_rule" "gateway_to_gateways" {
  count                        = local.committer_election ? 1 : 0
  security_group_id            = aws_security_group.gateway.id
  description                  = "Commit hand-overs to the shard committer"
  ip_protocol                  = "tcp"
  from_port                    = local.gateway_port
  to_port                      = local.gateway_port
  referenced_security_group_id = aws_security_group.gateway.id
  tags                         = local.tags
}

resource "aws_security_group" "compactor" {
  name_prefix = "${var.name}-compactor-"
  description = "Sluice ${var.name}: compactor task (no inbound)"
  vpc_id      = var.vpc_id
  tags        = local.tags

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_vpc_security_group_egress_rule" "https_out" {
  for_each = {
    gateway   = aws_security_group.gateway.id
    compactor = aws_security_group.compactor.id
  }

  #checkov:skip=CKV_AWS_382:The tasks reach S3, ECR, CloudWatch Logs and Secrets Manager over HTTPS at AWS's public addresses (or VPC endpoints); only port 443 is open.
  security_group_id = each.value
  description       = "HTTPS to AWS APIs (S3, ECR, CloudWatch Logs, Secrets Manager)"
  ip_protocol       = "tcp"
  from_port         = 443
  to_port           = 443
  cidr_ipv4         = "0.0.0.0/0"
  tags              = local.tags
}
