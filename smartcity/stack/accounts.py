"""The one-machine stack's own MQTT accounts: the operator, the gateway, the API and one per department.

Their passwords are the stack's secrets (``core.secrets``); this module gives them to the broker.
"""

from __future__ import annotations

from core.secrets import ADMIN_USERNAME, API_USERNAME, GATEWAY_USERNAME, StackSecrets
from devices.mqtt_accounts import AccountBackend, api_acls, department_acls, gateway_acls, operator_acls


async def ensure_service_accounts(accounts: AccountBackend, stack: StackSecrets) -> None:
    """Operator, gateway, API and one account per department, with their ACLs."""
    await accounts.start()
    try:
        await accounts.ensure_account(ADMIN_USERNAME, stack.admin_password, operator_acls())
        await accounts.ensure_account(GATEWAY_USERNAME, stack.gateway_password, gateway_acls())
        await accounts.ensure_account(API_USERNAME, stack.api_mqtt_password, api_acls())
        for department, password in stack.departments.items():
            await accounts.ensure_account(f"dept-{department}", password, department_acls(department))
    finally:
        await accounts.close()
