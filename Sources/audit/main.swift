import AuditCLI

AuditCommand.runAndExit()
