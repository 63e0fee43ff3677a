"""A budget: how much one user (or, with no user, everyone without a row of their own) may spend in a
UTC calendar day or month, in US dollars and in tokens (input + output).

May import: nothing of the app (the first room).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Budget(models.Model):
    class Period(models.TextChoices):
        DAY = "day"
        MONTH = "month"

    # None: the default for every user without a row of their own for this period.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="budgets"
    )
    period = models.CharField(max_length=8, choices=Period.choices)
    # A limit left empty is no limit. A user's row replaces the default's row of that period whole, so a
    # user row with both empty exempts that user from the default.
    max_cost = models.DecimalField(max_digits=12, decimal_places=4, null=True, blank=True, help_text="US dollars")
    max_tokens = models.PositiveBigIntegerField(null=True, blank=True, help_text="input + output tokens")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user_id", "period"]
        constraints = [
            models.UniqueConstraint(fields=["user", "period"], name="budgets_budget_user_period"),
            # NULLs are distinct in a unique constraint: the default row gets its own.
            models.UniqueConstraint(
                fields=["period"], condition=models.Q(user__isnull=True), name="budgets_budget_default_period"
            ),
            models.CheckConstraint(condition=models.Q(max_cost__gte=0), name="budgets_budget_max_cost_not_negative"),
        ]

    def __str__(self) -> str:
        who = self.user.get_username() if self.user is not None else "everyone (default)"
        return f"{self.get_period_display()} budget of {who}"
