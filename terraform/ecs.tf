# The gateways (a service behind the load balancer, autoscaled) and the compactor (one task;
# its lease in the bucket makes a second one harmless: it waits, fenced, until the first stops
# renewing). Both run the image built from the repository's Dockerfile, whose entrypoint is
# `sluice`; the task definitions give the subcommand.

resource "aws_ecs_cluster" "this" {
  name = var.name
  tags = local.tags

  setting {
    name  = "containerInsights"
    value = var.container_insights ? "enabled" : "disabled"
  }
}

resource "aws_ecs_task_definition" "gateway" {
  family                   = "${var.name}-gateway"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.gateway_cpu
  memory                   = var.gateway_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.gateway.arn
  tags                     = local.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name      = "gateway"
      image     = var.image
      essential = true
      command   = ["gateway"]
      # The image's user: distroless "nonroot". The gateway writes nothing to local disk.
      user                   = "65532:65532"
      readonlyRootFilesystem = true
      portMappings = [
        { name = "http", containerPort = local.gateway_port, protocol = "tcp" },
      ]
      environment = [for k in sort(keys(local.gateway_environment)) : { name = k, value = local.gateway_environment[k] }]
      secrets     = local.gateway_secrets
      # Long-polls and event streams hold connections (up to 4096 waiting readers by default).
      ulimits = [
        { name = "nofile", softLimit = 65536, hardLimit = 65536 },
      ]
      # SIGTERM: the gateway stops accepting, finishes in-flight commits, then exits.
      stopTimeout = 30
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.gateway.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "gateway"
        }
      }
    },
  ])
}

resource "aws_ecs_task_definition" "compactor" {
  family                   = "${var.name}-compactor"
  requires_compatibilities = ["FARGATE"]
  network_mode             = "awsvpc"
  cpu                      = var.compactor_cpu
  memory                   = var.compactor_memory
  execution_role_arn       = aws_iam_role.execution.arn
  task_role_arn            = aws_iam_role.compactor.arn
  tags                     = local.tags

  runtime_platform {
    operating_system_family = "LINUX"
    cpu_architecture        = var.cpu_architecture
  }

  container_definitions = jsonencode([
    {
      name      = "compactor"
      image     = var.image
      essential = true
      command = [
        "compactor",
        "--interval-ms", tostring(var.compactor_interval_ms),
        "--lease-ms", tostring(var.compactor_lease_ms),
      ]
      user                   = "65532:65532"
      readonlyRootFilesystem = true
      environment            = [for k in sort(keys(local.common_environment)) : { name = k, value = local.common_environment[k] }]
      stopTimeout            = 30
      logConfiguration = {
        logDriver = "awslogs"
        options = {
          awslogs-group         = aws_cloudwatch_log_group.compactor.name
          awslogs-region        = local.region
          awslogs-stream-prefix = "compactor"
        }
      }
    },
  ])
}

resource "aws_ecs_service" "gateway" {
  name                               = "${var.name}-gateway"
  cluster                            = aws_ecs_cluster.this.id
  task_definition                    = aws_ecs_task_definition.gateway.arn
  launch_type                        = "FARGATE"
  platform_version                   = "LATEST"
  desired_count                      = var.gateway_min_count
  health_check_grace_period_seconds  = var.health_check_grace_period_seconds
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  tags                               = local.tags

  network_configuration {
    subnets          = var.task_subnet_ids
    security_groups  = [aws_security_group.gateway.id]
    assign_public_ip = var.assign_public_ip
  }

  load_balancer {
    target_group_arn = aws_lb_target_group.gateway.arn
    container_name   = "gateway"
    container_port   = local.gateway_port
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  lifecycle {
    # Autoscaling owns the desired count after creation.
    ignore_changes = [desired_count]
  }

  # The target group must belong to a listener before a service can register into it.
  depends_on = [aws_lb_listener.http, aws_lb_listener.https, aws_iam_role_policy.gateway]
}

resource "aws_ecs_service" "compactor" {
  name             = "${var.name}-compactor"
  cluster          = aws_ecs_cluster.this.id
  task_definition  = aws_ecs_task_definition.compactor.arn
  launch_type      = "FARGATE"
  platform_version = "LATEST"
  # One is active at a time anyway (lease); during a deployment the new task waits for the
  # old one's lease, so 200% is safe and keeps a compactor running throughout.
  desired_count                      = 1
  deployment_minimum_healthy_percent = 100
  deployment_maximum_percent         = 200
  enable_ecs_managed_tags            = true
  propagate_tags                     = "SERVICE"
  tags                               = local.tags

  network_configuration {
    subnets          = var.task_subnet_ids
    security_groups  = [aws_security_group.compactor.id]
    assign_public_ip = var.assign_public_ip
  }

  deployment_circuit_breaker {
    enable   = true
    rollback = true
  }

  depends_on = [aws_iam_role_policy.compactor]
}
