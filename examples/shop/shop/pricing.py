"""Prices, discounts and taxes."""
from decimal import Decimal, ROUND_HALF_UP

from .models import Order

VAT_RATE = Decimal("0.20")


def round_money(amount: Decimal) -> Decimal:
    """Round an amount to whole cents, halves away from zero."""
    return amount.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


def apply_discount(order: Order, percent: int) -> Decimal:
    """Apply a percentage discount to the order total and return the new total."""
    if not 0 <= percent <= 100:
        raise ValueError(f"discount must be between 0 and 100, got {percent}")
    total = order.subtotal() * (Decimal(100 - percent) / 100)
    return round_money(total)


def add_vat(amount: Decimal) -> Decimal:
    """Add value-added tax to a net amount."""
    return round_money(amount * (1 + VAT_RATE))
