module "kms" {
  source = "../modules/kms-key"

  description = "${var.name} Terraform state and locks"
  alias       = "${var.name}-terraform-state"
}

# The key was created here before modules/kms-key existed: move it, never replace it
# (it encrypts every environment's state).
moved {
  from = aws_kms_key.state
  to   = module.kms.aws_kms_key.this
}

moved {
  from = aws_kms_alias.state
  to   = module.kms.aws_kms_alias.this
}
