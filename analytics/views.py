"""The managers' dashboard: charts drawn in the browser from data the page carries, with
Chart.js served by the project itself (no internet needed)."""

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from inventory.selectors import stock_health_by_location

from . import selectors


@staff_member_required
def dashboard(request):
    if not request.user.has_perm("analytics.view_memberscore"):
        raise PermissionDenied
    cohorts = list(selectors.retention())
    months = sorted({c.months_since for c in cohorts})
    heatmap = {}
    for cell in cohorts:
        row = heatmap.setdefault((cell.cohort, cell.first_channel), {})
        row[cell.months_since] = round(cell.active / cell.members, 3) if cell.members else 0
    context = {
        **admin.site.each_context(request),
        "charts": {
            "sales": selectors.daily_revenue_by_channel(),
            "top_products": [
                {"sku": p["sku"], "revenue": float(p["revenue"])} for p in selectors.top_products()
            ],
            "stock": stock_health_by_location(),
            "segments": [
                {"segment": s["segment"], "members": s["members"]} for s in selectors.segments()
            ],
            "clv": selectors.clv_histogram(),
        },
        "months": months,
        "heatmap": [
            {"cohort": cohort, "channel": channel, "cells": [row.get(m) for m in months]}
            for (cohort, channel), row in sorted(heatmap.items())
        ],
        "title": "Managers' dashboard",
    }
    return render(request, "analytics/dashboard.html", context)
