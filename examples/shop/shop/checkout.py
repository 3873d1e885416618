"""Checkout: from an open order to a paid one."""
import logging

from .models import Order
from .pricing import add_vat, apply_discount

log = logging.getLogger(__name__)


class PaymentError(Exception):
    """The payment provider refused the charge."""


class Checkout:
    def __init__(self, gateway, coupons):
        self.gateway = gateway
        self.coupons = coupons

    def pay(self, order: Order, coupon: str | None = None):
        """Charge the customer for the order, applying a coupon if one is given."""
        if order.status != "open":
            raise ValueError("only open orders can be paid")
        percent = self.coupons.get(coupon, 0) if coupon else 0
        amount = add_vat(apply_discount(order, percent))
        try:
            receipt = self.gateway.charge(order.customer_id, amount)
        except TimeoutError as exc:
            log.warning("payment timed out for customer %s", order.customer_id)
            raise PaymentError("payment provider timed out") from exc
        order.status = "paid"
        return receipt
