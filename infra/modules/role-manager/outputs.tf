output "function_arn" {
  description = "ARN of the role-manager function (the bot's task role may invoke it)."
  value       = aws_lambda_function.role_manager.arn
}

output "function_name" {
  description = "Name of the role-manager function."
  value       = aws_lambda_function.role_manager.function_name
}

output "security_group_id" {
  description = "Security group of the function: add it to the database's clients."
  value       = aws_security_group.role_manager.id
}
