from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from omnichannel.auth import api_client_of
from omnichannel.idempotency import idempotent

from .. import services
from ..models import Member
from ..selectors import member_list, points_ledger
from .serializers import MemberInputSerializer, MemberSerializer, PointsEntrySerializer


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
        qs = member_list()
        params = self.request.query_params
        if self.action == "list":
            email = services.normalize_email(params.get("email"))
            phone = services.normalize_phone(params.get("phone"))
            if email:
                qs = qs.filter(email=email)
            if phone:
                qs = qs.filter(phone=phone)
        return qs

    @extend_schema(
        request=MemberInputSerializer,
        responses={200: MemberSerializer, 201: MemberSerializer},
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
            location=client.location if client else None,
        )
        member = member_list().get(pk=member.pk)
        return Response(
            MemberSerializer(member).data,
            status=status.HTTP_201_CREATED if created else status.HTTP_200_OK,
        )

    @extend_schema(responses={200: PointsEntrySerializer(many=True)})
    @action(detail=True, methods=["get"])
    def points(self, request, pk=None):
        """The points ledger: earned, redeemed, expired, reversed, adjusted."""
        member = self.get_object()
        page = self.paginate_queryset(points_ledger(member_id=member.pk))
        return self.get_paginated_response(PointsEntrySerializer(page, many=True).data)
