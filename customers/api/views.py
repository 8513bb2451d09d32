from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound, PermissionDenied, ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response

from omnichannel.api.schema import CONFLICT
from omnichannel.auth import api_client_of
from omnichannel.idempotency import idempotent
from omnichannel.selectors import store_limit

from .. import privacy, services
from ..models import Member
from ..selectors import contact_is, member_list, points_ledger
from .serializers import (
    MemberInputSerializer,
    MemberSerializer,
    MergeInputSerializer,
    PointsEntrySerializer,
)


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter("email", OpenApiTypes.STR, description="Any case, any spaces."),
            OpenApiParameter("phone", OpenApiTypes.STR, description="Any format; E.164 stored."),
        ]
    )
)
class MemberViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """The unified member: one person whether they buy at a till or online."""

    queryset = Member.objects.none()
    serializer_class = MemberSerializer

    def get_queryset(self):
        """Staff may browse members. An API client looks a person up by their exact email or
        phone, and opens by id only members seen in its channel: a till or a storefront must
        not be able to page through everyone's contact details."""
        qs = member_list()
        client = api_client_of(self.request)
        params = self.request.query_params
        if self.action == "list":
            email = services.normalize_email(params.get("email"))
            phone = services.normalize_phone(params.get("phone"))
            if client is not None and not (email or phone):
                raise ValidationError({"email": ["Look a member up by `email` or `phone`."]})
            if email:
                qs = qs.filter(contact_is(kind="email", value=email))
            if phone:
                qs = qs.filter(contact_is(kind="phone", value=phone))
        elif client is not None:
            qs = qs.filter(seen_in__channel_id=client.channel_id).distinct()
        return qs

    @extend_schema(
        request=MemberInputSerializer,
        responses={200: MemberSerializer, 201: MemberSerializer, 409: CONFLICT},
        parameters=[OpenApiParameter("Idempotency-Key", OpenApiTypes.STR, "header")],
    )
    @idempotent
    def create(self, request):
        """Find the member by email or phone (200) or create them (201)."""
        data = MemberInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        client = api_client_of(request)
        member, created = services.member_upsert(
            contact=services.Contact(**data.validated_data),
            channel=client.channel if client else None,
            location=client.location if client is not None and client.is_till else None,
        )
        member = member_list().get(pk=member.pk)
        return Response(
            self.get_serializer(member).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(responses={200: PointsEntrySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def points(self, request, pk=None):
        """The points ledger: earned, redeemed, expired, reversed, adjusted."""
        member = self.get_object()
        page = self.paginate_queryset(
            points_ledger(member_id=member.pk, limit=store_limit(user=request.user))
        )
        return self.get_paginated_response(PointsEntrySerializer(page, many=True).data)

    def get_permissions(self):
        if self.action in ("merge", "export", "erase"):
            return [IsAuthenticated()]  # each checks its own permission (see _staff)
        return super().get_permissions()

    def _staff(self, request, perm: str, *, whole_business: bool = False) -> int:
        """Merge, export and erase are for staff holding the permission, never API clients
        nor a user who is not staff (whatever permissions they were given). Export and erase
        cover the person's orders at every store (`whole_business`): not for a store-limited
        account, which sees only its stores' orders."""
        user = request.user
        if api_client_of(request) is not None or not (
            user.is_active and user.is_staff and user.has_perm(perm)
        ):
            raise PermissionDenied("Staff with the right permission only.")
        if whole_business and store_limit(user=user) is not None:
            raise PermissionDenied(
                "This covers the person's orders at every store: not for a store-limited "
                "staff account."
            )
        return request.user.pk

    @extend_schema(request=MergeInputSerializer, responses={200: MemberSerializer, 409: CONFLICT})
    @action(detail=True, methods=["post"])
    def merge(self, request, pk=None):
        """Move everything of `other` (orders, points, channels, contact) to this member."""
        staff_id = self._staff(request, "customers.change_member")
        survivor = self.get_object()
        data = MergeInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        other_id = data.validated_data["other"]
        if not Member.objects.filter(pk=other_id).exists():
            raise NotFound("No member has that id.")
        privacy.member_merge(survivor_id=survivor.pk, other_id=other_id, staff_id=staff_id)
        return Response(self.get_serializer(member_list().get(pk=survivor.pk)).data)

    @extend_schema(responses={200: OpenApiTypes.OBJECT})
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        """Everything held on the person, as JSON."""
        staff_id = self._staff(request, "customers.view_member", whole_business=True)
        member = self.get_object()
        return Response(privacy.member_export(member_id=member.pk, staff_id=staff_id))

    @extend_schema(request=None, responses={204: None})
    @action(detail=True, methods=["post"])
    def erase(self, request, pk=None):
        """Remove the person's data; their orders stay, anonymous, for the books."""
        staff_id = self._staff(request, "customers.delete_member", whole_business=True)
        member = self.get_object()
        privacy.member_erase(member_id=member.pk, staff_id=staff_id)
        return Response(status=status.HTTP_204_NO_CONTENT)
