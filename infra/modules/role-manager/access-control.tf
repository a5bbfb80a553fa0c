resource "aws_iam_role" "role_manager" {
  name                 = var.name
  permissions_boundary = var.permissions_boundary_arn
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "lambda.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
    }]
  })
}

resource "aws_iam_role_policy" "role_manager" {
  name = "manage-database-roles"
  role = aws_iam_role.role_manager.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat(
      [
        {
          Sid      = "WriteLogs"
          Effect   = "Allow"
          Action   = ["logs:CreateLogStream", "logs:PutLogEvents"]
          Resource = "${aws_cloudwatch_log_group.role_manager.arn}:*"
        },
        {
          # What AWS's AWSLambdaVPCAccessExecutionRole grants: Lambda manages the
          # function's network interfaces with the function's role, and EC2 offers no
          # resource-level scoping that Lambda's calls would still satisfy.
          Sid      = "VpcNetworkInterfaces"
          Effect   = "Allow"
          Action   = ["ec2:CreateNetworkInterface", "ec2:DescribeNetworkInterfaces", "ec2:DescribeSubnets", "ec2:DeleteNetworkInterface", "ec2:AssignPrivateIpAddresses", "ec2:UnassignPrivateIpAddresses"]
          Resource = "*"
        },
        {
          Sid      = "ReadDatabaseSecrets"
          Effect   = "Allow"
          Action   = "secretsmanager:GetSecretValue"
          Resource = concat([var.master_secret_arn], local.password_secret_arns)
        },
        {
          Sid       = "DecryptDatabaseSecrets"
          Effect    = "Allow"
          Action    = "kms:Decrypt"
          Resource  = var.secrets_kms_key_arn
          Condition = { StringEquals = { "kms:ViaService" = "secretsmanager.${data.aws_region.current.name}.amazonaws.com" } }
        },
      ],
    )
  })
}
