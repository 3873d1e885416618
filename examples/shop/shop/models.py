"""Orders and the lines they hold."""
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass
class OrderLine:
    sku: str
    quantity: int
    unit_price: Decimal

    def total(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass
class Order:
    """A customer's order: lines, a customer id and a status."""

    customer_id: int
    lines: list[OrderLine] = field(default_factory=list)
    status: str = "open"

    def subtotal(self) -> Decimal:
        """Sum of the line totals, before discounts and tax."""
        return sum((line.total() for line in self.lines), Decimal(0))

    def add_line(self, sku: str, quantity: int, unit_price: Decimal) -> None:
        if quantity <= 0:
            raise ValueError("quantity must be positive")
        self.lines.append(OrderLine(sku, quantity, unit_price))
