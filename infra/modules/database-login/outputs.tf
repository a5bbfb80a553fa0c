output "secret_arn" {
  description = "Secrets Manager secret of the bot's login; its \"url\" key is the bot's DATABASE_URL, its \"password\" key is read by the role manager."
  value       = aws_secretsmanager_secret.login.arn
}

output "login_role" {
  description = "Database role the bot logs in as."
  value       = var.login_role
}
