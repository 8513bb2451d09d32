"""The managers' dashboard: charts drawn in the browser from data the page carries, with
Chart.js served by the project itself (no internet needed)."""

from django.contrib import admin
from django.contrib.admin.views.decorators import staff_member_required
from django.core.exceptions import PermissionDenied
from django.shortcuts import render

from inventory.selectors import stock_health_by_location
from omnichannel.selectors import locations_allowed, store_limit

from . import selectors


@staff_member_required
def dashboard(request):
    """The figures of the business, or for a store-limited staff member those of their
    stores: sales, top products and stock health over their stores' orders and stock, and
    no member-level charts (segments, CLV, retention cover every store; see analytics.api)."""
    if not request.user.has_perm("analytics.view_memberscore"):
        raise PermissionDenied
    limit = store_limit(user=request.user)
    whole_business = limit is None
    cohorts = list(selectors.retention()) if whole_business else []
    months = sorted({c.months_since for c in cohorts})
    heatmap = {}
    for cell in cohorts:
        row = heatmap.setdefault((cell.cohort, cell.first_channel), {})
        row[cell.months_since] = round(cell.active / cell.members, 3) if cell.members else 0
    context = {
        **admin.site.each_context(request),
        "charts": {
            "sales": selectors.daily_revenue_by_channel(limit=limit),
            "top_products": [
                {"sku": p["sku"], "currency": p["currency"], "revenue": float(p["revenue"])}
                for p in selectors.top_products(store_limit=limit)
            ],
            "stock": stock_health_by_location(limit=limit),
            "segments": [
                {"segment": s["segment"], "members": s["members"]}
                for s in (selectors.segments() if whole_business else [])
            ],
            "clv": selectors.clv_histogram() if whole_business else {"labels": [], "counts": []},
        },
        "whole_business": whole_business,
        "stores": (
            list(locations_allowed(limit=limit).values_list("code", flat=True))
            if limit is not None
            else []
        ),
        "months": months,
        "heatmap": [
            {"cohort": cohort, "channel": channel, "cells": [row.get(m) for m in months]}
            for (cohort, channel), row in sorted(heatmap.items())
        ],
        "title": "Managers' dashboard",
    }
    return render(request, "analytics/dashboard.html", context)
