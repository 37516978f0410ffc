# The application load balancer in front of the gateways. A gateway is ready when its object
# store answers (GET /readyz); any gateway serves any request, so there is no stickiness.

resource "aws_lb" "this" {
  #checkov:skip=CKV2_AWS_28:A WAF web ACL is associated when web_acl_arn is given (aws_wafv2_web_acl_association.this); Sluice's own bearer tokens guard the API.
  #checkov:skip=CKV_AWS_91:Access logs are written when alb_access_logs_bucket is given (the operator's log bucket and its ELB delivery policy are outside this module).
  name                       = "${var.name}-alb"
  internal                   = var.internal
  load_balancer_type         = "application"
  subnets                    = var.alb_subnet_ids
  security_groups            = [aws_security_group.alb.id]
  idle_timeout               = var.idle_timeout_seconds
  drop_invalid_header_fields = true
  enable_deletion_protection = var.deletion_protection
  tags                       = local.tags

  dynamic "access_logs" {
    for_each = var.alb_access_logs_bucket == null ? [] : [var.alb_access_logs_bucket]

    content {
      bucket  = access_logs.value
      prefix  = var.name
      enabled = true
    }
  }
}

resource "aws_lb_target_group" "gateway" {
  #checkov:skip=CKV_AWS_378:The gateway serves plain HTTP inside the VPC (its security group admits only the load balancer); TLS ends at the HTTPS listener.
  name        = "${var.name}-gateway"
  port        = local.gateway_port
  protocol    = "HTTP"
  target_type = "ip"
  vpc_id      = var.vpc_id
  # Long-polls wait up to 30 s: let them finish before a task is stopped.
  deregistration_delay = 35
  tags                 = local.tags

  health_check {
    path                = "/readyz"
    matcher             = "200"
    interval            = 10
    timeout             = 5
    healthy_threshold   = 2
    unhealthy_threshold = 3
  }
}

resource "aws_lb_listener" "https" {
  count = local.https ? 1 : 0

  load_balancer_arn = aws_lb.this.arn
  port              = 443
  protocol          = "HTTPS"
  ssl_policy        = var.ssl_policy
  certificate_arn   = var.certificate_arn
  tags              = local.tags

  default_action {
    type             = "forward"
    target_group_arn = aws_lb_target_group.gateway.arn
  }
}

# With a certificate: port 80 redirects to HTTPS. Without one (internal load balancers only):
# port 80 serves the gateways.
resource "aws_lb_listener" "http" {
  #checkov:skip=CKV_AWS_2:Port 80 redirects to HTTPS whenever certificate_arn is given; plain HTTP is only served without a certificate, meant for internal load balancers.
  #checkov:skip=CKV_AWS_103:Same listener: TLS is on the HTTPS listener (ssl_policy, TLS 1.2 or newer by validation).
  load_balancer_arn = aws_lb.this.arn
  port              = 80
  protocol          = "HTTP"
  tags              = local.tags

  default_action {
    type             = local.https ? "redirect" : "forward"
    target_group_arn = local.https ? null : aws_lb_target_group.gateway.arn

    dynamic "redirect" {
      for_each = local.https ? [1] : []

      content {
        port        = "443"
        protocol    = "HTTPS"
        status_code = "HTTP_301"
      }
    }
  }
}

resource "aws_wafv2_web_acl_association" "this" {
  count = var.web_acl_arn == null ? 0 : 1

  resource_arn = aws_lb.this.arn
  web_acl_arn  = var.web_acl_arn
}
