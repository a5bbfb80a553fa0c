# One opsbot environment: every part of the system around the bot, wired together.
# The roots in infra/envs/<env>/ call this module with their environment's settings.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}

locals {
  name          = "opsbot-${var.environment}"
  emf_namespace = "opsbot/${var.environment}"

  # Made by infra/bootstrap (modules/github-oidc -> modules/permissions-boundary), not
  # here: the deploy role that applies this module may not create or change it.
  permissions_boundary_arn = coalesce(
    var.permissions_boundary_arn,
    "arn:${data.aws_partition.current.partition}:iam::${data.aws_caller_identity.current.account_id}:policy/${local.name}-permissions-boundary",
  )
}

module "network" {
  source = "../network"

  name               = local.name
  cidr_block         = var.vpc_cidr_block
  availability_zones = var.availability_zones
  single_nat_gateway = var.single_nat_gateway

  permissions_boundary_arn = local.permissions_boundary_arn
}

module "monitoring" {
  source = "../monitoring"

  name                        = local.name
  bot_https_endpoint          = var.subscribe_bot_https ? "https://${var.domain_name}/sns" : null
  pagerduty_fallback_endpoint = var.pagerduty_fallback_endpoint
  pagerduty_endpoint_required = !var.allow_unpaged_self_alarms
  pagerduty_all_alarms        = var.pagerduty_fallback_all_alarms

  queue_redrive_principal_arns = var.alarm_queue_redrive_principal_arns
}

module "database" {
  source = "../database"

  name                      = local.name
  vpc_id                    = module.network.vpc_id
  private_subnet_ids        = module.network.private_subnet_ids
  client_security_group_ids = [module.service.tasks_security_group_id, module.role_manager.security_group_id]
  database_name             = "opsbot"
  instance_count            = var.database_instance_count
  min_capacity_acu          = var.database_min_capacity_acu
  max_capacity_acu          = var.database_max_capacity_acu
  deletion_protection       = var.deletion_protection
  permissions_boundary_arn  = local.permissions_boundary_arn
}

module "database_login" {
  source = "../database-login"

  name          = local.name
  kms_key_arn   = module.database.kms_key_arn
  login_role    = "opsbot_migrator"
  host          = module.database.endpoint
  port          = module.database.port
  database_name = module.database.database_name
}

# The bot's own database roles: it logs in as the migrator (it runs its own migrations
# at start and owns its schema), with the password of the login secret; opsbot_app is
# the DML-only role for anything else that reads the bot's data.
module "role_manager" {
  source = "../role-manager"

  name                         = "${local.name}-role-manager"
  package_path                 = var.role_manager_package_path
  vpc_id                       = module.network.vpc_id
  vpc_cidr_block               = module.network.vpc_cidr_block
  subnet_ids                   = module.network.private_subnet_ids
  db_host                      = module.database.endpoint
  db_port                      = module.database.port
  db_name                      = module.database.database_name
  db_security_group_id         = module.database.security_group_id
  master_secret_arn            = module.database.master_secret_arn
  secrets_kms_key_arn          = module.database.kms_key_arn
  schema_name                  = "opsbot"
  migrator_role                = module.database_login.login_role
  app_role                     = "opsbot_app"
  migrator_password_secret_arn = module.database_login.secret_arn
  permissions_boundary_arn     = local.permissions_boundary_arn
}

module "feature_flags" {
  source = "../feature-flags"

  backend          = var.feature_flag_backend
  service_name     = "opsbot"
  environment_name = var.environment
  flags            = var.feature_flags

  permissions_boundary_arn = local.permissions_boundary_arn
}

module "service" {
  source = "../service"

  name                  = local.name
  vpc_id                = module.network.vpc_id
  public_subnet_ids     = module.network.public_subnet_ids
  private_subnet_ids    = module.network.private_subnet_ids
  certificate_arn       = var.certificate_arn
  deletion_protection   = var.deletion_protection
  allowed_ingress_cidrs = var.allowed_ingress_cidrs

  metrics_ingress_security_group_ids = var.metrics_ingress_security_group_ids
  metrics_ingress_cidrs              = var.metrics_ingress_cidrs
  enable_execute_command             = var.enable_execute_command

  image_repository_url = var.image_repository_url
  image_repository_arn = var.image_repository_arn
  image_kms_key_arn    = var.image_kms_key_arn
  image_tag            = var.image_tag
  cpu                  = var.cpu
  memory               = var.memory
  desired_count        = var.min_count
  min_count            = var.min_count
  max_count            = var.max_count
  config_yaml          = var.config_yaml
  environment          = var.extra_environment
  app_secret_keys      = concat(["SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "PAGERDUTY_API_TOKEN", "PAGERDUTY_WEBHOOK_SECRETS"], var.extra_secret_keys)

  feature_flag_parameter_arns = module.feature_flags.ssm_parameter_arns

  database_url_secret_arn     = module.database_login.secret_arn
  database_secret_kms_key_arn = module.database.kms_key_arn
  database_security_group_id  = module.database.security_group_id
  database_port               = module.database.port

  self_alarm_topic_arn     = module.monitoring.self_alarm_topic_arn
  emf_namespace            = local.emf_namespace
  sns_topic_arns           = concat([module.monitoring.topic_arn], var.extra_sns_topic_arns)
  sns_topic_accounts       = var.sns_topic_accounts
  alarm_queue_url          = module.monitoring.queue_url
  alarm_queue_raw_delivery = module.monitoring.queue_raw_message_delivery
  alarm_queue_arn          = module.monitoring.queue_arn
  alarm_queue_kms_key_arn  = module.monitoring.kms_key_arn

  deployable_cluster_arns         = var.deployable_cluster_arns
  deployable_service_arns         = var.deployable_service_arns
  deployable_role_arns            = var.deployable_role_arns
  deployable_repository_arns      = var.deployable_repository_arns
  flag_appconfig_application_arns = compact(concat([module.feature_flags.appconfig_application_arn], var.flag_appconfig_application_arns))
  flag_ssm_service_names          = compact(concat([module.feature_flags.ssm_service_name], var.flag_ssm_service_names))
  role_manager_function_arns      = concat([module.role_manager.function_arn], var.role_manager_function_arns)

  permissions_boundary_arn = local.permissions_boundary_arn
}
