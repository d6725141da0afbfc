"""The notifications service: tells tenants and operators (SMS, WeChat, e-mail) and third
parties (signed webhooks) what the other services said on the bus."""
