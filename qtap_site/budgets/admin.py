"""Budgets in the admin, for staff: one row per user and period (no user: the default for everyone).

May import: ``models``.
"""

from __future__ import annotations

from django.contrib import admin

from qtap_site.budgets.models import Budget


@admin.register(Budget)
class BudgetAdmin(admin.ModelAdmin):
    list_display = ("__str__", "period", "max_cost", "max_tokens", "updated_at")
    list_filter = ("period",)
    list_select_related = ("user",)
    search_fields = ("user__username",)
    autocomplete_fields = ("user",)
    fieldsets = (
        (
            None,
            {
                "fields": ("user", "period", "max_cost", "max_tokens"),
                "description": "Leave the user empty for the default of everyone without a budget of their own. "
                "Periods are UTC calendar days and months; cost is in US dollars, tokens are input + output. "
                "An empty limit is no limit: a user's row with both empty exempts them from the default.",
            },
        ),
    )
